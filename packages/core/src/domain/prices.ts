import { z } from 'zod';

/**
 * The price table (issue 18, item 3): what a provider's model costs, in the site's currency.
 * Token prices are per million tokens, image prices per image made.
 */
export const PRICE_UNITS = ['input_token', 'output_token', 'image'] as const;
export type PriceUnit = (typeof PRICE_UNITS)[number];

export interface Price {
  provider: string;
  model: string;
  unit: PriceUnit;
  /** Per 1,000,000 tokens for token units; per image for `image`. */
  price: number;
}

/** What is priced: one provider and model's usage in a task (or many tasks summed). */
export interface PricedUsage {
  provider: string;
  model: string;
  inputTokens: number;
  outputTokens: number;
  images: number;
}

export interface Cost {
  currency: string;
  amount: number;
  /** False when some provider and model with usage has no price in the table (its share counts as 0). */
  complete: boolean;
}

const name = z
  .string()
  .trim()
  .min(1, { error: 'Name the provider and the model.' })
  .max(200, { error: 'Keep names under 200 characters.' });

export const priceSchema = z
  .object({
    provider: name,
    model: name,
    unit: z.enum(PRICE_UNITS, { error: `The unit is one of ${PRICE_UNITS.join(', ')}.` }),
    price: z
      .number({ error: 'The price is a number.' })
      .finite({ error: 'The price is a number.' })
      .min(0, { error: 'The price cannot be negative.' }),
  })
  .strict();

/**
 * Reads a price table: a list of prices, or text with one price a line, `provider model unit price`
 * (e.g. `openai gpt-image-1 image 0.04`; blank lines and lines starting with # are skipped).
 * Text is what the settings page's textarea sends; the API may send either.
 */
export function parsePrices(value: unknown): unknown {
  if (typeof value !== 'string') return value;
  const out: unknown[] = [];
  for (const [index, raw] of value.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const parts = line.split(/\s+/);
    if (parts.length !== 4) return { line: index + 1, text: line };
    const [provider, model, unit, price] = parts as [string, string, string, string];
    out.push({ provider, model, unit, price: /^\d+(\.\d+)?$/.test(price) ? Number(price) : price });
  }
  return out;
}

/** Prices as the settings page's textarea shows them, one a line. */
export function formatPrices(prices: readonly Price[]): string {
  return prices.map((p) => `${p.provider} ${p.model} ${p.unit} ${p.price}`).join('\n');
}

export const pricesSchema = z.preprocess(
  parsePrices,
  z
    .array(priceSchema, {
      error: (issue) =>
        issue.input && typeof issue.input === 'object' && 'line' in issue.input
          ? `Line ${String((issue.input as { line: number }).line)}: write "provider model unit price", e.g. "openai gpt-image-1 image 0.04".`
          : 'Write one price a line: provider model unit price.',
    })
    .max(500, { error: 'At most 500 prices.' })
    .superRefine((prices, ctx) => {
      const seen = new Set<string>();
      for (const [index, p] of prices.entries()) {
        const key = `${p.provider} ${p.model} ${p.unit}`;
        if (seen.has(key)) ctx.addIssue({ code: 'custom', path: [index], message: `Price ${index + 1}: ${key} is priced twice.` });
        seen.add(key);
      }
    }),
);

export const currencySchema = z
  .string({ error: 'Enter a three-letter currency code such as USD or EUR.' })
  .trim()
  .transform((s) => s.toUpperCase())
  .pipe(z.string().regex(/^[A-Z]{3}$/, { error: 'Enter a three-letter currency code such as USD or EUR.' }));

/**
 * The estimated cost of some usage: Σ input tokens × price/1e6 + output tokens × price/1e6 +
 * images × price, per provider and model. A provider and model with usage but no price at all
 * makes the estimate incomplete (its share counts as 0); a unit without a price costs nothing
 * (a model priced by tokens has no image price). Rounded to 6 decimals against float noise.
 */
export function estimateCost(usage: readonly PricedUsage[], prices: readonly Price[], currency: string): Cost {
  let amount = 0;
  let complete = true;
  for (const u of usage) {
    const own = prices.filter((p) => p.provider === u.provider && p.model === u.model);
    const quantity = { input_token: u.inputTokens, output_token: u.outputTokens, image: u.images };
    if (quantity.input_token + quantity.output_token + quantity.image === 0) continue;
    if (own.length === 0) {
      complete = false;
      continue;
    }
    for (const p of own) amount += p.unit === 'image' ? quantity.image * p.price : (quantity[p.unit] * p.price) / 1_000_000;
  }
  return { currency, amount: Math.round(amount * 1e6) / 1e6, complete };
}

/** A cost for people: "EUR 1.85", small amounts with 4 decimals ("USD 0.0060"), and "(incomplete)" when some usage has no price. */
export function formatCost(cost: Cost): string {
  if (!cost.complete && cost.amount === 0) return 'unknown (no price in the settings for the models used)';
  const amount = cost.amount.toFixed(cost.amount > 0 && cost.amount < 1 ? 4 : 2);
  return `${cost.currency} ${amount}${cost.complete ? '' : ' (incomplete: some provider/model has no price in the settings)'}`;
}
