import { defineEntity, type InferEntity, p } from '@mikro-orm/core';
import type { Settings } from '../domain/settings.js';
import type { TaskStatus } from '../domain/status.js';
import type { StyleParams } from '../ports.js';
import type { DemographicTargets } from '../domain/targets.js';

/**
 * Entities (defineEntity: no decorators, so tsx/esbuild builds load them). The schema itself is
 * changed only by the migrations in ./migrations; a test checks that both agree.
 */

export const User = defineEntity({
  name: 'User',
  tableName: 'users',
  properties: {
    id: p.integer().primary().autoincrement(),
    email: p.string().unique(),
    passwordHash: p.string(),
    isAdmin: p.boolean().default(false),
    active: p.boolean().default(true),
    lastLoginAt: p.datetime().nullable(),
    createdAt: p.datetime().onCreate(() => new Date()),
  },
});

export const Session = defineEntity({
  name: 'Session',
  tableName: 'sessions',
  properties: {
    id: p.string().primary(),
    userId: p.integer().nullable().index(),
    data: p.json<Record<string, unknown>>(),
    expiresAt: p.datetime().index(),
    createdAt: p.datetime().onCreate(() => new Date()),
    updatedAt: p
      .datetime()
      .onCreate(() => new Date())
      .onUpdate(() => new Date()),
  },
});

export const ApiToken = defineEntity({
  name: 'ApiToken',
  tableName: 'api_tokens',
  properties: {
    id: p.integer().primary().autoincrement(),
    userId: p.integer().index(),
    name: p.string(),
    tokenHash: p.string().unique(),
    createdAt: p.datetime().onCreate(() => new Date()),
    lastUsedAt: p.datetime().nullable(),
    revokedAt: p.datetime().nullable(),
  },
});

export const Setting = defineEntity({
  name: 'Setting',
  tableName: 'settings',
  properties: {
    key: p.string().primary(),
    value: p.json<unknown>(),
    updatedAt: p
      .datetime()
      .onCreate(() => new Date())
      .onUpdate(() => new Date()),
  },
});

export interface ErrorLogEntry {
  at: string;
  stage: 'personas' | 'images' | 'task';
  message: string;
}

export const GenerationTask = defineEntity({
  name: 'GenerationTask',
  tableName: 'generation_tasks',
  properties: {
    id: p.string().primary(),
    userId: p.integer().nullable().index(),
    description: p.text(),
    languageCode: p.string(),
    languageName: p.string(),
    count: p.integer(),
    imagesPerPersona: p.integer(),
    status: p.string().$type<TaskStatus>().index(),
    settings: p.json<Settings>(),
    /** Demographic targets (domain/targets.ts), or null when the task has none. */
    targets: p.json<DemographicTargets>().nullable(),
    /** The quality report computed when the task last ended (services/quality.ts). */
    qualityReport: p.json<Record<string, unknown>>().nullable(),
    storagePrefix: p.string(),
    /** Incremented by every retry, so the retried work gets new queue job ids. */
    run: p.integer().default(0),
    errorLog: p.json<ErrorLogEntry[]>(),
    createdAt: p
      .datetime()
      .onCreate(() => new Date())
      .index(),
    updatedAt: p
      .datetime()
      .onCreate(() => new Date())
      .onUpdate(() => new Date()),
    startedAt: p.datetime().nullable(),
    finishedAt: p.datetime().nullable(),
  },
});

export const PersonaBatchRow = defineEntity({
  name: 'PersonaBatchRow',
  tableName: 'persona_batches',
  properties: {
    taskId: p.string().primary(),
    batchNo: p.integer().primary(),
    size: p.integer(),
    status: p.string().$type<'pending' | 'done' | 'failed'>(),
    received: p.integer().default(0),
    rejected: p.integer().default(0),
    /** Personas that missed their demographic quota: asked for again, or stored off target. */
    offTarget: p.integer().default(0),
    error: p.text().nullable(),
    /** The queue job sent for this batch (pg-boss job id). */
    jobId: p.uuid().nullable(),
    updatedAt: p
      .datetime()
      .onCreate(() => new Date())
      .onUpdate(() => new Date()),
  },
});

export const Persona = defineEntity({
  name: 'Persona',
  tableName: 'personas',
  uniques: [{ properties: ['taskId', 'batchNo', 'batchIndex'] }],
  properties: {
    id: p.integer().primary().autoincrement(),
    taskId: p.string().index(),
    batchNo: p.integer(),
    batchIndex: p.integer(),
    firstName: p.string(),
    lastName: p.string(),
    gender: p.string().$type<'f' | 'm'>(),
    ethnicity: p.string(),
    age: p.integer().nullable(),
    bioFacebook: p.text(),
    bioInstagram: p.text(),
    bioX: p.text(),
    bioTiktok: p.text(),
    jobTitle: p.string(),
    workplace: p.string(),
    eduEstablishment: p.string(),
    eduStudy: p.string(),
    currentCity: p.string(),
    currentState: p.string(),
    prevCity: p.string(),
    prevState: p.string(),
    currentCountry: p.string().default(''),
    about: p.text(),
    baseImageKey: p.string().nullable(),
    baseFaceKey: p.string().nullable(),
    basePhash: p.string().length(16).nullable(),
    prompts: p.json<string[]>(),
    imagesStatus: p.string().$type<'pending' | 'done' | 'failed'>(),
    imagesError: p.text().nullable(),
    /** The queue job sent for this persona's images (pg-boss job id). */
    jobId: p.uuid().nullable(),
    createdAt: p.datetime().onCreate(() => new Date()),
  },
});

export const PersonaImage = defineEntity({
  name: 'PersonaImage',
  tableName: 'persona_images',
  properties: {
    personaId: p.integer().primary(),
    idx: p.integer().primary(),
    taskId: p.string().index(),
    gridNo: p.integer(),
    key: p.string(),
    contentType: p.string(),
    width: p.integer(),
    height: p.integer(),
    style: p.json<StyleParams>().nullable(),
    /** Perceptual hash (dHash, 16 hex characters) when the image processor makes one. */
    phash: p.string().length(16).nullable(),
    createdAt: p.datetime().onCreate(() => new Date()),
  },
});

export const ImageFlag = defineEntity({
  name: 'ImageFlag',
  tableName: 'image_flags',
  properties: {
    id: p.integer().primary().autoincrement(),
    kind: p.string(),
    faceKey: p.string().nullable().index(),
    taskId: p.string().nullable(),
    personaId: p.integer().nullable(),
    reason: p.text(),
    createdAt: p.datetime().onCreate(() => new Date()),
  },
});

export const ENTITIES = [User, Session, ApiToken, Setting, GenerationTask, PersonaBatchRow, Persona, PersonaImage, ImageFlag];

export type UserEntity = InferEntity<typeof User>;
export type ApiTokenEntity = InferEntity<typeof ApiToken>;
export type TaskEntity = InferEntity<typeof GenerationTask>;
export type PersonaEntity = InferEntity<typeof Persona>;
export type PersonaImageEntity = InferEntity<typeof PersonaImage>;
