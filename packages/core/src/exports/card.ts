import type { Settings } from '../domain/settings.js';
import type { TargetsReport } from '../domain/targets.js';
import type { QualityReport } from '../services/quality.js';
import type { Demographics } from '../services/personas.js';
import type { ModelUsage, TaskView } from '../services/views.js';

/** What the dataset is for, said in every card. */
export const FICTION_STATEMENT =
  'Every person in this dataset is fictional: the names, biographies and other details were generated and describe no real person. ' +
  'Every picture is AI-generated: none is a photograph of a real person.';
export const INTENDED_USES = [
  'testing and demonstrating software with realistic-looking but synthetic people',
  'interface mock-ups, prototypes and documentation',
  'training and evaluating systems where real personal data must not be used',
];
export const NOT_INTENDED_USES = ['passing any of these people off as real', 'fake accounts, impersonation or any other deception'];

/**
 * The dataset card (issue 18, item 2): what was asked, with which settings, plugins and models,
 * when, what came out and what the people in it look like. Built from the database by
 * ExportsService.card; the same card is in the ZIP (DATASET.md, dataset.json), the JSON export
 * (`dataset`) and the dataset page.
 */
export interface DatasetCard {
  id: string;
  status: string;
  request: { description: string; language: { code: string; name: string }; count: number; imagesPerPersona: number };
  /** The settings that shaped the pictures and texts, from the task's snapshot (see GenerationSettings). */
  generation: GenerationSettings;
  /** Which plugin filled each port (port → plugin), as the task was submitted; null when not recorded. */
  plugins: Record<string, string> | null;
  /** Which provider and model did the work, with its calls, tokens and images. */
  models: ModelUsage[];
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  counts: {
    personas: number;
    images: number;
    rejectedPersonas: number;
    retries: number;
    moderationBlocks: number;
    imagesRequested: number;
    providerCalls: number;
  };
  demographics: {
    gender: { f: number; m: number };
    ageBands: Array<{ band: string; count: number }>;
    ethnicity: Array<{ ethnicity: string; count: number }>;
  };
  /** The demographic targets next to what was achieved; null when the dataset had none. */
  targets: TargetsReport | null;
  /** The quality report's findings, counted (the whole report is quality.json); null when not made. */
  quality: QualitySummary | null;
  statement: string;
  intendedUses: string[];
  notIntendedUses: string[];
}

/**
 * The settings a dataset user needs to know how the data was made: bio instructions, reference
 * faces, picture processing and output, provenance marks. The site's own (task limits, prices)
 * stay out of exports.
 */
export const GENERATION_SETTINGS = [
  'bio_prompt_facebook',
  'bio_prompt_instagram',
  'bio_prompt_x',
  'bio_prompt_tiktok',
  'randomize_face_base',
  'randomize_face_gender_lock',
  'crop_white_borders',
  'randomize_image_style',
  'provenance_marks',
  'image_quality',
  'image_size',
  'image_output_format',
  'image_output_compression',
  'image_background',
] as const satisfies readonly (keyof Settings)[];
export type GenerationSettings = Partial<Pick<Settings, (typeof GENERATION_SETTINGS)[number]>>;

function generationSettings(settings: Settings): GenerationSettings {
  // A snapshot from before a setting existed lacks it: left out rather than guessed.
  return Object.fromEntries(GENERATION_SETTINGS.filter((key) => settings[key] !== undefined).map((key) => [key, settings[key]]));
}

export interface QualitySummary {
  flaggedPersonas: number;
  nearDuplicateTexts: number;
  duplicateNames: number;
  similarPicturesAcrossPersonas: number;
  similarPicturesWithinPersona: number;
  rejectedPersonas: number;
  offTargetPersonas: number;
}

export function qualitySummary(report: QualityReport): QualitySummary {
  return {
    flaggedPersonas: report.flaggedPersonas.length,
    nearDuplicateTexts: report.texts.nearDuplicates.length,
    duplicateNames: report.names.duplicates.length,
    similarPicturesAcrossPersonas: report.pictures.acrossPersonas.length,
    similarPicturesWithinPersona: report.pictures.withinPersona.length,
    rejectedPersonas: report.rejectedPersonas,
    offTargetPersonas: report.offTargetPersonas,
  };
}

export function datasetCard(
  task: TaskView,
  demographics: Demographics & { ageBands: Array<{ band: string; count: number }> },
  quality: QualityReport | null = null,
): DatasetCard {
  return {
    id: task.id,
    status: task.status,
    request: { description: task.description, language: task.language, count: task.count, imagesPerPersona: task.imagesPerPersona },
    generation: generationSettings(task.settings),
    plugins: task.plugins,
    models: task.usage.byModel,
    createdAt: task.createdAt,
    startedAt: task.startedAt,
    finishedAt: task.finishedAt,
    counts: {
      personas: task.progress.personasStored,
      images: task.progress.imagesStored,
      rejectedPersonas: task.usage.rejectedPersonas,
      retries: task.usage.retries,
      moderationBlocks: task.usage.moderationBlocks,
      imagesRequested: task.usage.imagesRequested,
      providerCalls: task.usage.calls,
    },
    demographics: { gender: demographics.gender, ageBands: demographics.ageBands, ethnicity: demographics.ethnicity },
    targets: quality?.targets ?? null,
    quality: quality ? qualitySummary(quality) : null,
    statement: FICTION_STATEMENT,
    intendedUses: INTENDED_USES,
    notIntendedUses: NOT_INTENDED_USES,
  };
}

/** Markdown text: one line, no table or heading syntax from the data. */
const md = (value: unknown) =>
  String(value ?? '')
    .replace(/[\r\n]+/g, ' ')
    .replace(/([\\`*_[\]<>|#])/g, '\\$1');
const time = (date: Date | null) => (date ? new Date(date).toISOString() : '—');

/** DATASET.md: the card for people. */
export function renderCardMarkdown(card: DatasetCard): string {
  const lines = [
    `# Dataset ${md(card.id)}`,
    '',
    `> ${card.statement}`,
    '',
    '## Request',
    '',
    `- Description: ${md(card.request.description)}`,
    `- Language: ${md(card.request.language.name)} (${md(card.request.language.code)})`,
    `- Personas asked for: ${card.request.count}; images per persona: ${card.request.imagesPerPersona}`,
    `- Status: ${md(card.status)}`,
    `- Created ${time(card.createdAt)}, started ${time(card.startedAt)}, finished ${time(card.finishedAt)}`,
    '',
    '## Counts',
    '',
    `- Personas: ${card.counts.personas}`,
    `- Images: ${card.counts.images} (base selfies not counted), ${card.counts.imagesRequested} requested from the image provider`,
    `- Rejected personas: ${card.counts.rejectedPersonas}`,
    `- Retries: ${card.counts.retries}`,
    `- Moderation blocks: ${card.counts.moderationBlocks}`,
    `- Provider calls: ${card.counts.providerCalls}`,
    '',
    '## Plugins and models',
    '',
    ...(card.plugins ? Object.entries(card.plugins).map(([port, plugin]) => `- ${md(port)}: ${md(plugin)}`) : ['- not recorded']),
    ...card.models.map(
      (m) =>
        `- model ${md(m.provider)}/${md(m.model)}: ${m.calls} calls, ${m.inputTokens} input and ${m.outputTokens} output tokens, ${m.images} images`,
    ),
    '',
    '## Demographics',
    '',
    `- Gender: ${card.demographics.gender.f} female, ${card.demographics.gender.m} male`,
    `- Age: ${card.demographics.ageBands.map((b) => `${md(b.band)}: ${b.count}`).join(', ') || '—'}`,
    `- Ethnicity: ${card.demographics.ethnicity.map((e) => `${md(e.ethnicity)}: ${e.count}`).join(', ') || '—'}`,
    '',
    ...(card.targets
      ? [
          '## Requested vs achieved',
          '',
          ...card.targets.dimensions.map(
            (d) =>
              `- ${d.dimension}: ${d.rows.map((r) => `${md(r.label)} ${r.achieved} of ${r.requested}`).join(', ')}${d.other ? `; other ${d.other}` : ''}`,
          ),
          '',
        ]
      : []),
    ...(card.quality
      ? [
          '## Quality report',
          '',
          `- Personas flagged: ${card.quality.flaggedPersonas} (details in quality.json)`,
          `- Near-duplicate texts: ${card.quality.nearDuplicateTexts}; repeated names: ${card.quality.duplicateNames}`,
          `- Similar pictures across personas: ${card.quality.similarPicturesAcrossPersonas}; within one persona: ${card.quality.similarPicturesWithinPersona}`,
          `- Personas refused: ${card.quality.rejectedPersonas}; off their demographic quota: ${card.quality.offTargetPersonas}`,
          '',
        ]
      : []),
    '## Intended uses',
    '',
    ...card.intendedUses.map((u) => `- ${u}`),
    '',
    'Not for:',
    '',
    ...card.notIntendedUses.map((u) => `- ${u}`),
    '',
    '## Generation settings',
    '',
    '```json',
    JSON.stringify(card.generation, null, 2),
    '```',
    '',
  ];
  return lines.join('\n');
}
