import {
  type BaseImageRequest,
  CancelledError,
  ConfigError,
  type EncodedImage,
  type ImageProvider,
  InvalidImageError,
  type PersonaData,
  type Pictures,
  type PicturesRequest,
  readImageInfo,
  throwIfAborted,
  ValidationError,
} from '@avatargen/core';
import type * as avataaars from '@dicebear/avataaars';
import type { createAvatar } from '@dicebear/core';
import type Sharp from 'sharp';

let sharpModule: Promise<typeof Sharp> | undefined;
/** sharp (libvips, ~30 MB) loads with the first picture: a web-only process never draws one. */
const loadSharp = () => (sharpModule ??= import('sharp').then((module) => module.default));
let dicebearModules: Promise<{ createAvatar: typeof createAvatar; avataaars: typeof avataaars }> | undefined;
/** DiceBear (its sources alone are ~1 MB of heap) loads with the first picture too. */
const loadDicebear = () =>
  (dicebearModules ??= Promise.all([import('@dicebear/core'), import('@dicebear/avataaars')]).then(([core, style]) => ({
    createAvatar: core.createAvatar,
    avataaars: style,
  })));
import { SETTINGS } from './prompts.js';
import { createRandom, type Random } from '@avatargen/core';

export interface LocalImageOptions {
  /** Side of the base portrait in pixels. Default 512. */
  imageSize?: number;
  /** Side of the scene in one picture, in pixels. Default: imageSize. */
  pictureSize?: number;
  /** White frame around each picture (as image services leave one). Default: pictureSize / 10. */
  margin?: number;
}

/** The most pictures one call draws. */
const MAX_PICTURES = 16;

export interface PictureLayout {
  /** Side of the scene inside the frame. */
  picture: number;
  margin: number;
  /** Width and height of the whole picture, frame included. */
  size: number;
}

type AvataaarsOptions = NonNullable<Parameters<typeof createAvatar<avataaars.Options>>[1]>;
type Top = NonNullable<avataaars.Options['top']>[number];

const FEMALE_TOPS: Top[] = [
  'bob',
  'bun',
  'curly',
  'curvy',
  'frida',
  'fro',
  'froBand',
  'longButNotTooLong',
  'miaWallace',
  'straight01',
  'straight02',
  'straightAndStrand',
  'bigHair',
  'dreads',
];
const MALE_TOPS: Top[] = [
  'dreads01',
  'dreads02',
  'frizzle',
  'shaggy',
  'shaggyMullet',
  'shortCurly',
  'shortFlat',
  'shortRound',
  'shortWaved',
  'sides',
  'theCaesar',
  'theCaesarAndSidePart',
  'shavedSides',
];
const HAIR = ['a55728', '2c1b18', 'b58143', 'd6b370', '724133', '4a312c', 'c93305'];
const DARK_HAIR = ['2c1b18', '4a312c', '724133'];
/** Silver, grey and salt-and-pepper: nothing a viewer could take for blond. */
export const GREY_HAIR = ['e8e1e1', 'bdbdbd', '9e9e9e'];
/** Clothes that read as grown-up: no hoodie, graphic shirt or overall for people over 40. */
const ADULT_CLOTHING: NonNullable<avataaars.Options['clothing']> = [
  'blazerAndShirt',
  'blazerAndSweater',
  'collarAndSweater',
  'shirtCrewNeck',
  'shirtVNeck',
];
/** Natural (less cartoonish) brows for people over 40. */
const ADULT_EYEBROWS: NonNullable<avataaars.Options['eyebrows']> = ['defaultNatural', 'flatNatural', 'upDownNatural'];
const SKIN = {
  light: ['ffdbb4', 'edb98a'],
  medium: ['edb98a', 'd08b5b'],
  dark: ['ae5d29', '614335'],
  any: ['ffdbb4', 'edb98a', 'd08b5b', 'ae5d29', '614335'],
};
/** Clothes colours without white or near white, so no picture edge ever looks like a border. */
const CLOTHES = ['262e33', '65c9ff', '5199e4', '25557c', '929598', '3c4f5c', 'a7ffc4', 'ffafb9', 'ff488e', 'ff5c5c'];
const EYES: NonNullable<avataaars.Options['eyes']> = ['default', 'happy', 'side', 'squint', 'wink', 'surprised'];
const MOUTHS: NonNullable<avataaars.Options['mouth']> = ['smile', 'default', 'twinkle', 'serious'];
const EYEBROWS: NonNullable<avataaars.Options['eyebrows']> = [
  'defaultNatural',
  'flatNatural',
  'raisedExcitedNatural',
  'upDownNatural',
  'default',
];
const CLOTHING: NonNullable<avataaars.Options['clothing']> = [
  'blazerAndShirt',
  'blazerAndSweater',
  'collarAndSweater',
  'graphicShirt',
  'hoodie',
  'overall',
  'shirtCrewNeck',
  'shirtScoopNeck',
  'shirtVNeck',
];
/** Clear reading glasses only ('kurt' reads as sunglasses on a portrait). */
const GLASSES: NonNullable<avataaars.Options['accessories']> = ['prescription01', 'prescription02', 'round'];

/** Sky and ground colours per setting; every one has a channel well under 220, so never reads as white. */
const PALETTES: Record<string, { sky: string[]; ground: string[] }> = {
  cafe: { sky: ['8d6e63', 'a1887f', 'bc8f6f'], ground: ['4e342e', '5d4037'] },
  park: { sky: ['81d4fa', '90caf9'], ground: ['66bb6a', '43a047', '7cb342'] },
  beach: { sky: ['4fc3f7', '29b6f6'], ground: ['e6c88a', 'd7b877'] },
  kitchen: { sky: ['ffcc80', 'ffb74d'], ground: ['a1887f', '8d6e63'] },
  office: { sky: ['b0bec5', '90a4ae'], ground: ['607d8b', '546e7a'] },
  street: { sky: ['9e9e9e', '78909c'], ground: ['616161', '424242'] },
  mountain: { sky: ['64b5f6', '42a5f5'], ground: ['6d4c41', '795548', '558b2f'] },
  library: { sky: ['a1887f', '8d6e63'], ground: ['5d4037', '4e342e'] },
  gym: { sky: ['90a4ae', '78909c'], ground: ['37474f', '455a64'] },
  market: { sky: ['ffb74d', 'ffa726'], ground: ['8d6e63', 'a1887f'] },
  'living room': { sky: ['bcaaa4', 'c9b8b0'], ground: ['795548', '6d4c41'] },
  rooftop: { sky: ['4fc3f7', 'ff8a65'], ground: ['757575', '616161'] },
  lake: { sky: ['81d4fa', '4fc3f7'], ground: ['0288d1', '0277bd'] },
  concert: { sky: ['311b92', '4a148c'], ground: ['212121', '263238'] },
  snow: { sky: ['b0bec5', 'a7b6c2'], ground: ['b3c7d6', 'a9bccb'] },
  garden: { sky: ['aed581', '9ccc65'], ground: ['558b2f', '689f38'] },
  train: { sky: ['90a4ae', 'b0bec5'], ground: ['455a64', '546e7a'] },
  museum: { sky: ['bcaaa4', 'b0a59e'], ground: ['8d6e63', '795548'] },
};
const OTHER_SKIES = ['7986cb', '4db6ac', 'ff8a65', 'ba68c8', '4fc3f7', 'aed581', 'f06292', 'ffb74d'];
const STUDIO = ['b6e3f4', 'c0aede', 'd1d4f9', 'ffd5dc', 'ffdfbf'];

/** Avatar height relative to the picture, per framing named in the prompt. */
const FRAMING_SCALE: Array<[RegExp, number]> = [
  [/wide|environmental|landscape/i, 0.58],
  [/full-body/i, 0.66],
  [/half-body|over-the-shoulder/i, 0.8],
  [/close-up|selfie/i, 1],
  [/head-and-shoulders|portrait/i, 0.92],
];

/** Default side of the base portrait and of a picture's scene: big enough to look at, not a thumbnail. */
export const DEFAULT_SIZE = 512;

export function pictureLayout(options: LocalImageOptions = {}): PictureLayout {
  const picture = options.pictureSize ?? options.imageSize ?? DEFAULT_SIZE;
  const margin = options.margin ?? Math.max(2, Math.round(picture / 10));
  return { picture, margin, size: picture + margin * 2 };
}

function checkOptions(options: LocalImageOptions): void {
  const issues: string[] = [];
  const whole = (name: keyof LocalImageOptions, min: number, max: number) => {
    const value = options[name];
    if (value !== undefined && !(Number.isInteger(value) && value >= min && value <= max)) {
      issues.push(`${name} must be a whole number from ${min} to ${max}, got ${value}`);
    }
  };
  whole('imageSize', 32, 2048);
  whole('pictureSize', 32, 2048);
  whole('margin', 1, 512);
  if (issues.length > 0) throw new ConfigError(issues);
}

/** The stable traits of a persona's face: the same person in every picture. */
export interface Face {
  skinColor: string;
  top: Top;
  hairColor: string;
  eyebrows: NonNullable<avataaars.Options['eyebrows']>[number];
  facialHair?: NonNullable<avataaars.Options['facialHair']>[number];
  studio: string;
  clothing: NonNullable<avataaars.Options['clothing']>[number];
  clothesColor: string;
  wearsGlasses: boolean;
  /** The one pair of reading glasses the persona wears, in every picture. */
  glasses: NonNullable<avataaars.Options['accessories']>[number];
  age: number;
}

/** The identity the face is derived from: name, gender and age (not the task), so it never drifts. */
export function faceSeed(persona: Pick<PersonaData, 'firstName' | 'lastName' | 'gender' | 'age'>): string {
  return `${persona.firstName}|${persona.lastName}|${persona.gender}|${persona.age ?? ''}`;
}

function skinFor(ethnicity: string): string[] {
  const e = ethnicity.toLowerCase();
  if (/black|african|aboriginal/.test(e)) return SKIN.dark;
  if (/white|japanese|korean|han|chinese|taiwanese|east asian|armenian|georgian/.test(e)) return SKIN.light;
  if (
    /hispanic|mestizo|pardo|arab|persian|turkish|kurdish|south asian|southeast|indian|north african|middle eastern|amazigh|coloured|mixed|indigenous/.test(
      e,
    )
  ) {
    return SKIN.medium;
  }
  return SKIN.any;
}

/**
 * The persona's look, a pure function of its identity and ethnicity: skin, hair (grey from the
 * mid-50s), brows, beard and clothes. Base portrait and every picture are drawn from it.
 */
export function faceOf(persona: PersonaData): Face {
  const r = createRandom('face', faceSeed(persona));
  const female = persona.gender === 'f';
  const ethnicity = persona.ethnicity.toLowerCase();
  const darkHaired = /black|african|asian|japanese|chinese|korean|han|arab|hispanic|mestizo|south|persian|turkish/.test(ethnicity);
  const age = persona.age ?? 35;
  let top = r.pick(female ? FEMALE_TOPS : MALE_TOPS);
  if (female && /arab|persian|amazigh|kurdish|pakistani|maldivian/.test(ethnicity) && r.chance(0.35)) top = 'hijab';
  // The drawing has no wrinkles: grey hair, natural brows, grown-up clothes and (for men) beards
  // are what make an older persona read as older rather than as a child.
  const grey = age >= 55 || (age >= 45 && r.chance(0.3));
  const older = age >= 40;
  return {
    skinColor: r.pick(skinFor(persona.ethnicity)),
    top,
    hairColor: grey ? r.pick(GREY_HAIR) : r.pick(darkHaired ? DARK_HAIR : HAIR),
    eyebrows: r.pick(older ? ADULT_EYEBROWS : EYEBROWS),
    facialHair:
      !female && r.chance(age >= 45 ? 0.65 : 0.4)
        ? r.pick(['beardLight', 'beardMedium', 'beardMajestic', 'moustacheFancy'] as const)
        : undefined,
    studio: r.pick(STUDIO),
    clothing: r.pick(older ? ADULT_CLOTHING : CLOTHING),
    clothesColor: r.pick(CLOTHES),
    wearsGlasses: r.chance(age >= 55 ? 0.7 : age >= 45 ? 0.5 : 0.25),
    glasses: r.pick(GLASSES),
    age,
  };
}

/** The DiceBear options of one drawing of the face; what a shot changes never touches skin, hair or beard. */
export function avatarOptions(face: Face, size: number, shot: Partial<AvataaarsOptions>, seed: string): AvataaarsOptions {
  return {
    seed,
    size,
    backgroundColor: ['transparent'],
    topProbability: 100,
    hatColor: ['3c4f5c', '25557c', '929598'],
    accessoriesProbability: 0,
    clothing: [face.clothing],
    clothesColor: [face.clothesColor],
    eyes: ['default'],
    mouth: ['smile'],
    ...shot,
    // identity last: no shot may override it
    skinColor: [face.skinColor],
    top: [face.top],
    hairColor: [face.hairColor],
    facialHair: face.facialHair ? [face.facialHair] : ['beardLight'],
    facialHairProbability: face.facialHair ? 100 : 0,
    facialHairColor: [face.hairColor],
    eyebrows: [face.eyebrows],
  };
}

async function avatarSvg(options: AvataaarsOptions): Promise<string> {
  const dicebear = await loadDicebear();
  return dicebear.createAvatar(dicebear.avataaars, options).toString();
}

function hex(color: string): [number, number, number] {
  return [0, 2, 4].map((i) => Number.parseInt(color.slice(i, i + 2), 16)) as [number, number, number];
}

function toHex(rgb: [number, number, number]): string {
  return rgb
    .map((v) =>
      Math.max(0, Math.min(255, Math.round(v)))
        .toString(16)
        .padStart(2, '0'),
    )
    .join('');
}

/** The light named in the prompt shifts the colours: dusk and neon darken, golden hour warms, overcast greys. */
function applyLight(color: string, prompt: string): string {
  const [r, g, b] = hex(color);
  const p = prompt.toLowerCase();
  if (/night|neon|dusk|evening|dark/.test(p)) return toHex([r * 0.6, g * 0.6, b * 0.75]);
  if (/golden|sunset|warm/.test(p)) return toHex([r * 0.95 + 20, g * 0.9 + 8, b * 0.75]);
  if (/overcast|cloudy|rain|grey|gray/.test(p)) return toHex([r * 0.75 + 30, g * 0.75 + 30, b * 0.75 + 30]);
  return color;
}

function sceneSvg(size: number, sky: string, ground: string, horizon: number): string {
  const [r, g, b] = hex(sky);
  const light = toHex([r + (255 - r) * 0.3, g + (255 - g) * 0.3, b + (255 - b) * 0.2]);
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${size}">` +
    '<defs><linearGradient id="sky" x1="0" y1="0" x2="0" y2="1">' +
    `<stop offset="0" stop-color="#${sky}"/><stop offset="1" stop-color="#${light}"/></linearGradient></defs>` +
    `<rect width="${size}" height="${size}" fill="url(#sky)"/>` +
    `<rect y="${horizon}" width="${size}" height="${size - horizon}" fill="#${ground}"/></svg>`
  );
}

/** Everything one shot of a prompt draws, chosen before any drawing (so tests can read it). */
export interface ShotPlan {
  avatar: AvataaarsOptions;
  avatarSize: number;
  left: number;
  sky: string;
  ground: string;
  horizon: number;
}

function planShot(face: Face, prompt: string, size: number, r: Random, seed: string): ShotPlan {
  const p = prompt.toLowerCase();
  const setting = SETTINGS.find((s) => p.includes(s.key));
  const palette = setting ? PALETTES[setting.key] : undefined;
  const sky = applyLight(palette ? r.pick(palette.sky) : r.pick(OTHER_SKIES), prompt);
  const ground = applyLight(palette ? r.pick(palette.ground) : r.pick(OTHER_SKIES), prompt);
  const scale = FRAMING_SCALE.find(([re]) => re.test(prompt))?.[1] ?? r.pick([1, 0.92, 0.8]);
  // Each shot of a prompt differs a little: scale, position, expression, clothes, glasses.
  const avatarSize = Math.max(16, Math.round(size * Math.min(1, scale * (0.94 + r.next() * 0.08))));
  const left = Math.round((size - avatarSize) / 2 + (r.next() - 0.5) * (size - avatarSize) * 0.8);
  const outdoors = ['beach', 'park', 'mountain', 'lake', 'market', 'rooftop', 'street', 'garden', 'concert'].includes(setting?.key ?? '');
  const accessories: AvataaarsOptions['accessories'] =
    outdoors && /sun|golden|beach|midday/.test(p) && r.chance(0.6)
      ? ['sunglasses', 'wayfarers']
      : face.wearsGlasses
        ? [face.glasses]
        : undefined;
  const shot: Partial<AvataaarsOptions> = {
    eyes: [r.pick(EYES)],
    mouth: [r.pick(MOUTHS)],
    clothing: r.chance(0.6) ? [r.pick(face.age >= 40 ? ADULT_CLOTHING : CLOTHING)] : [face.clothing],
    clothesColor: [r.pick(CLOTHES)],
    accessories: accessories ?? ['round'],
    accessoriesProbability: accessories ? 100 : 0,
    accessoriesColor: ['262e33', '3c4f5c', '25557c', '929598'],
    // No winter hats: they hide the hair, and the hair is part of who the persona is.
    flip: r.chance(0.5),
  };
  const horizon = Math.round(size * (0.55 + r.next() * 0.25));
  return {
    avatar: avatarOptions(face, avatarSize, shot, seed),
    avatarSize,
    left: Math.max(0, Math.min(size - avatarSize, left)),
    sky,
    ground,
    horizon,
  };
}

/**
 * What each of `count` pictures of a prompt draws: a pure function of persona, prompt and seed
 * (exported so tests can check that skin, hair and age look stay those of the base portrait).
 */
export function planPictures(persona: PersonaData, prompt: string, seed: string, count: number, size: number): ShotPlan[] {
  const face = faceOf(persona);
  return Array.from({ length: count }, (_, index) =>
    planShot(face, prompt, size, createRandom('shot', faceSeed(persona), seed, prompt, index), `${seed}:${index}`),
  );
}

/** The DiceBear options of the base portrait. */
export function baseOptions(persona: PersonaData, size: number): AvataaarsOptions {
  const face = faceOf(persona);
  return avatarOptions(face, size, { accessories: [face.glasses], accessoriesProbability: face.wearsGlasses ? 100 : 0 }, faceSeed(persona));
}

async function renderShot(plan: ShotPlan, size: number): Promise<Buffer> {
  const sharp = await loadSharp();
  const avatar = await sharp(Buffer.from(await avatarSvg(plan.avatar)))
    .png()
    .toBuffer();
  return sharp(Buffer.from(sceneSvg(size, plan.sky, plan.ground, plan.horizon)))
    .composite([{ input: avatar, left: plan.left, top: size - plan.avatarSize }])
    .removeAlpha()
    .png()
    .toBuffer();
}

/** A cancellable step: rejects with CancelledError as soon as the signal fires. */
async function step<T>(signal: AbortSignal | undefined, work: () => Promise<T>): Promise<T> {
  throwIfAborted(signal);
  if (!signal) return work();
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new CancelledError());
    signal.addEventListener('abort', onAbort, { once: true });
    work().then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        if (signal.aborted) reject(new CancelledError());
        else resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(signal.aborted ? new CancelledError() : error);
      },
    );
  });
}

/**
 * Pictures drawn with DiceBear's avataaars style and rendered by sharp, with no network. The face
 * (skin, hair, brows, beard) comes from the persona's identity, so every shot shows the same
 * person; the setting, light and framing named in the prompt choose the scene, and each shot
 * varies expression, clothes and glasses. `pictures` returns separate pictures (no grid), each in a
 * white frame that the image processor crops off.
 */
export function createLocalImageProvider(options: LocalImageOptions = {}): ImageProvider {
  checkOptions(options);
  const baseSize = options.imageSize ?? DEFAULT_SIZE;
  const layout = pictureLayout(options);

  return {
    // Named in every picture's provenance mark.
    describe: () => ({ model: 'dicebear-avataaars' }),
    async baseImage(request: BaseImageRequest): Promise<EncodedImage> {
      return step(request.signal, async () => {
        const face = faceOf(request.persona);
        const svg = await avatarSvg(baseOptions(request.persona, baseSize));
        const sharp = await loadSharp();
        const avatar = await sharp(Buffer.from(svg)).png().toBuffer();
        const data = await sharp({ create: { width: baseSize, height: baseSize, channels: 3, background: `#${face.studio}` } })
          .composite([{ input: avatar, left: 0, top: 0 }])
          .png()
          .toBuffer();
        request.onUsage?.({ provider: 'local', model: 'dicebear', inputTokens: 0, outputTokens: 0, images: 1 });
        return { data, contentType: 'image/png' };
      });
    },

    async pictures(request: PicturesRequest): Promise<Pictures> {
      throwIfAborted(request.signal);
      if (!Number.isInteger(request.count) || request.count < 1 || request.count > MAX_PICTURES) {
        throw new ValidationError({ count: `must be a whole number from 1 to ${MAX_PICTURES}, got ${String(request.count)}` });
      }
      // The base is not drawn from (the face comes from the persona), but it must be an image.
      const info = readImageInfo(request.base.data);
      if (info.contentType !== request.base.contentType) {
        throw new InvalidImageError(`Base image is ${info.contentType}, not ${request.base.contentType}`);
      }
      const prompt = request.prompt ?? '';
      const { picture, margin, size } = layout;
      const plans = planPictures(request.persona, prompt, request.seed, request.count, picture);
      const sharp = await loadSharp();
      const images: EncodedImage[] = [];
      for (const plan of plans) {
        const scene = await step(request.signal, () => renderShot(plan, picture));
        const data = await step(request.signal, () =>
          sharp({ create: { width: size, height: size, channels: 3, background: '#ffffff' } })
            .composite([{ input: scene, left: margin, top: margin }])
            .png()
            .toBuffer(),
        );
        images.push({ data, contentType: 'image/png' });
      }
      request.onUsage?.({ provider: 'local', model: 'dicebear', inputTokens: 0, outputTokens: 0, images: images.length });
      return { kind: 'images', images };
    },
  };
}
