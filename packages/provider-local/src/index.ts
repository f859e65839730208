import { definePlugin, type AvatarGenPlugin, type ImagePromptProvider, type ImageProvider, type PersonaProvider } from '@avatargen/core';
import { createLocalImageProvider, type LocalImageOptions } from './images.js';
import { createLocalPersonaProvider } from './personas.js';
import { createLocalPromptProvider } from './prompts.js';

export type LocalProviderOptions = LocalImageOptions;

export interface LocalProviders {
  personas: PersonaProvider;
  prompts: ImagePromptProvider;
  images: ImageProvider;
}

/** The three offline providers: personas from faker, shot prompts, and DiceBear pictures rendered by sharp. */
export function createLocalProviders(options: LocalProviderOptions = {}): LocalProviders {
  return {
    personas: createLocalPersonaProvider(),
    prompts: createLocalPromptProvider(),
    images: createLocalImageProvider(options),
  };
}

/** Fills personaProvider, imagePromptProvider and imageProvider with the offline providers. */
export function localPlugin(options: LocalProviderOptions = {}): AvatarGenPlugin {
  return definePlugin({
    name: '@avatargen/provider-local',
    provides: ['personaProvider', 'imagePromptProvider', 'imageProvider'],
    register(context) {
      const providers = createLocalProviders(options);
      context.provide('personaProvider', providers.personas);
      context.provide('imagePromptProvider', providers.prompts);
      context.provide('imageProvider', providers.images);
    },
  });
}

export { localPlugin as default };
export { BIO_LIMITS, createLocalPersonaProvider, MAX_PERSONAS_PER_CALL } from './personas.js';
export { createLocalPromptProvider, PICTURE_KIND } from './prompts.js';
export {
  baseOptions,
  createLocalImageProvider,
  DEFAULT_SIZE,
  type Face,
  faceOf,
  faceSeed,
  GREY_HAIR,
  type LocalImageOptions,
  type PictureLayout,
  pictureLayout,
  planPictures,
  type ShotPlan,
} from './images.js';
export { type BioRules, readBioInstructions } from './bio-rules.js';
export { readCues, readAgeRange, readGenders, type DescriptionCues } from './cues.js';
export {
  type City,
  COUNTRIES,
  type Country,
  countryForLocale,
  countryName,
  type LocationTarget,
  type PlaceCue,
  type PlaceLevel,
  placeName,
  readPlace,
  type Region,
  resolveLocation,
} from './places.js';
export { fakerLocaleFor, sexedFirstNames } from './locales.js';
