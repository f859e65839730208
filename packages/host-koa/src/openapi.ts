import {
  COUNT_MAX,
  COUNT_MIN,
  generationRequestSchema,
  IMAGES_PER_PERSONA,
  imageOutputOverrideSchema,
  listLanguages,
  settingsObjectSchema,
  settingsSchema,
  TARGET_DIMENSIONS,
  TASK_STATUSES,
  targetsSchema,
} from '@avatargen/core';
import { z } from 'zod';

type JsonSchema = Record<string, unknown> & { properties?: Record<string, Record<string, unknown>> };

function fromZod(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  const { $schema: _ignored, ...json } = z.toJSONSchema(schema, { io, unrepresentable: 'any', target: 'openapi-3.0' }) as JsonSchema;
  return json;
}

const error = {
  type: 'object',
  properties: {
    error: { type: 'string' },
    fields: { type: 'object', additionalProperties: { type: 'string' }, description: 'A message per invalid field.' },
    requestId: { type: 'string' },
  },
  required: ['error', 'requestId'],
};

const progress = {
  type: 'object',
  properties: {
    personasStored: { type: 'integer' },
    imagesStored: { type: 'integer' },
    personasTotal: { type: 'integer' },
    imagesTotal: { type: 'integer' },
    percent: { type: 'number' },
  },
};

const task = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    description: { type: 'string' },
    language: { type: 'object', properties: { code: { type: 'string' }, name: { type: 'string' } } },
    count: { type: 'integer' },
    imagesPerPersona: { type: 'integer' },
    status: {
      type: 'string',
      enum: [...TASK_STATUSES],
      description: '`partial`: ended with something missing (compare the progress counts); it can be retried.',
    },
    settings: { $ref: '#/components/schemas/Settings' },
    errorLog: {
      type: 'array',
      items: { type: 'object', properties: { at: { type: 'string' }, stage: { type: 'string' }, message: { type: 'string' } } },
    },
    progress: { $ref: '#/components/schemas/Progress' },
    createdAt: { type: 'string', format: 'date-time' },
    updatedAt: { type: 'string', format: 'date-time' },
    startedAt: { type: 'string', format: 'date-time', nullable: true },
    finishedAt: { type: 'string', format: 'date-time', nullable: true },
    usage: { $ref: '#/components/schemas/Usage' },
    cost: {
      type: 'object',
      description: "The usage at the site's price table (settings `prices` and `currency`): an estimate, at today's prices.",
      properties: {
        currency: { type: 'string', description: 'ISO 4217 code, e.g. USD.' },
        amount: { type: 'number' },
        complete: { type: 'boolean', description: 'False when some provider and model with usage has no price (its share counts as 0).' },
      },
    },
    targets: {
      allOf: [{ $ref: '#/components/schemas/Targets' }],
      nullable: true,
      description: 'The demographic targets asked for, normalised to the structured form (text is parsed at submission); null when none.',
    },
    plugins: {
      type: 'object',
      nullable: true,
      additionalProperties: { type: 'string' },
      description: 'Which plugin filled each port when the task was submitted (port → plugin name).',
    },
  },
};

const tokenCounts = {
  calls: { type: 'integer', description: 'Provider calls that reported usage.' },
  inputTokens: { type: 'integer', description: 'Prompt (input) tokens.' },
  outputTokens: { type: 'integer', description: 'Completion (output) tokens.' },
};

const usage = {
  type: 'object',
  description:
    "Usage of the task's provider calls (those that report it), in total and per provider and model, with the task's counts of images, retries, moderation blocks and rejected personas.",
  properties: {
    ...tokenCounts,
    imagesRequested: {
      type: 'integer',
      description: 'Images asked of the image provider (1 per base selfie, 4 per picture request), retries included.',
    },
    imagesMade: { type: 'integer', description: 'Images the image provider made that were kept.' },
    retries: { type: 'integer', description: 'Provider calls tried again after a failure.' },
    moderationBlocks: { type: 'integer', description: 'Requests the image service blocked, blocked reference faces included.' },
    rejectedPersonas: { type: 'integer', description: "Personas in the persona provider's answers that could not be used." },
    byModel: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          provider: { type: 'string' },
          model: { type: 'string' },
          ...tokenCounts,
          images: { type: 'integer', description: 'Images made (what a per-image price multiplies).' },
        },
      },
    },
  },
};

const image = {
  type: 'object',
  properties: {
    index: { type: 'integer' },
    url: { type: 'string' },
    thumbnailUrl: { type: 'string' },
    width: { type: 'integer' },
    height: { type: 'integer' },
    contentType: { type: 'string' },
  },
};

const persona = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    firstName: { type: 'string' },
    lastName: { type: 'string' },
    gender: { type: 'string', enum: ['f', 'm'] },
    ethnicity: { type: 'string' },
    age: { type: 'integer', nullable: true },
    bios: {
      type: 'object',
      properties: { facebook: { type: 'string' }, instagram: { type: 'string' }, x: { type: 'string' }, tiktok: { type: 'string' } },
    },
    jobTitle: { type: 'string' },
    workplace: { type: 'string' },
    eduEstablishment: { type: 'string' },
    eduStudy: { type: 'string' },
    currentCity: { type: 'string' },
    currentState: { type: 'string' },
    prevCity: { type: 'string' },
    prevState: { type: 'string' },
    about: { type: 'string' },
    baseImage: { type: 'object', nullable: true, properties: { url: { type: 'string' } } },
    images: { type: 'array', items: { $ref: '#/components/schemas/Image' } },
  },
};

/** How each dimension may be written as text (domain/targets.ts in core). */
const TARGET_TEXT: Record<(typeof TARGET_DIMENSIONS)[number], { description: string; example: string }> = {
  genders: {
    description: 'A split (`50/50`: female/male), words with shares (`female 60%, male 40%`), counts (`f 7, m 3`) or one word (`women`).',
    example: 'female 60%, male 40%',
  },
  ages: {
    description: 'Inclusive age bands 0-120 with shares, not overlapping: `25-40`, `18-29 40%, 30-49 60%`, `65+`.',
    example: '18-29 40%, 30-49 60%',
  },
  ethnicities: {
    description: 'Names with shares (`Portuguese 70%, Brazilian 30%`), or names alone for equal shares.',
    example: 'Portuguese 70%, Brazilian 30%',
  },
  locations: {
    description:
      'Places with shares or alone; split on `;` or new lines when there are any, else on commas, so `Lisbon, Portugal; Porto, Portugal` names two.',
    example: 'Lisbon; Porto, Portugal',
  },
};

/**
 * The request's `targets`: each dimension as text or in the structured form. The structured
 * form comes from core's targetsSchema; the text form (parsed by the same schema's preprocessing,
 * which JSON Schema cannot express) is added as the other branch of a oneOf.
 */
function targetsRequest(): JsonSchema {
  const structured = fromZod(targetsSchema, 'input');
  const properties = Object.fromEntries(
    TARGET_DIMENSIONS.map((dimension) => {
      const { description, example } = TARGET_TEXT[dimension];
      return [
        dimension,
        {
          description: `${description} Shares are weights (60, 40 and 3, 2 give the same split); percentages must add up to 100; counts that add up to the dataset's size give exactly those counts. Empty or null: no target.`,
          nullable: true,
          oneOf: [{ type: 'string', example }, structured.properties?.[dimension] ?? {}],
        },
      ];
    }),
  );
  return {
    ...structured,
    properties,
    nullable: true,
    description:
      'Optional demographic targets; each persona gets an exact quota. Errors come back per dimension as `targets.genders`, `targets.ages`... (422). In the structured form a gender may also be written as a word (female, male, women...).',
    example: { genders: '50/50', ages: '25-40 60%, 41-65 40%', locations: [{ name: 'Lisbon, Portugal', share: 1 }] },
  };
}

const targetRow = {
  type: 'object',
  properties: {
    label: { type: 'string', description: 'The value as text: female, 25-40, 65+, Portuguese, Lisbon...' },
    requested: { type: 'integer', description: 'Personas asked for: the exact quota count for the task.' },
    achieved: { type: 'integer', description: 'Stored personas that meet this value.' },
  },
};

const pictureRef = {
  type: 'object',
  properties: { personaId: { type: 'integer' }, idx: { oneOf: [{ type: 'integer' }, { type: 'string', enum: ['base'] }] } },
};
const picturePair = {
  type: 'object',
  properties: { a: pictureRef, b: pictureRef, distance: { type: 'integer', description: 'Hamming distance 0-64.' } },
};
const textRef = { type: 'object', properties: { personaId: { type: 'integer' }, field: { type: 'string' } } };

const qualityReport = {
  type: 'object',
  properties: {
    taskId: { type: 'string' },
    generatedAt: { type: 'string', format: 'date-time' },
    settings: { type: 'object', properties: { textThreshold: { type: 'number' }, pictureMaxDistance: { type: 'integer' } } },
    texts: {
      type: 'object',
      properties: {
        checked: { type: 'integer' },
        nearDuplicates: {
          type: 'array',
          items: {
            type: 'object',
            properties: { a: textRef, b: textRef, similarity: { type: 'number', description: 'Jaccard similarity 0-1.' } },
          },
        },
      },
    },
    names: {
      type: 'object',
      properties: {
        duplicates: {
          type: 'array',
          items: {
            type: 'object',
            properties: { fullName: { type: 'string' }, personaIds: { type: 'array', items: { type: 'integer' } } },
          },
        },
      },
    },
    pictures: {
      type: 'object',
      properties: {
        hashed: { type: 'integer' },
        unhashed: { type: 'integer' },
        acrossPersonas: { type: 'array', items: picturePair },
        withinPersona: { type: 'array', items: picturePair },
      },
    },
    flaggedPersonas: { type: 'array', items: { type: 'integer' }, description: 'Personas named by any finding, ascending.' },
    rejectedPersonas: {
      type: 'integer',
      description: 'Personas the pipeline refused (malformed, or repeating someone already in the dataset).',
    },
    offTargetPersonas: {
      type: 'integer',
      description: 'Personas that missed their demographic quota: asked for again, or stored off target.',
    },
    targets: {
      type: 'object',
      nullable: true,
      description:
        'The demographic targets next to what the stored personas are; null when the task has none. Each dimension is counted on its own.',
      properties: {
        personas: { type: 'integer', description: 'Stored personas counted.' },
        dimensions: {
          type: 'array',
          items: {
            type: 'object',
            properties: {
              dimension: { type: 'string', enum: [...TARGET_DIMENSIONS] },
              rows: { type: 'array', items: targetRow },
              other: { type: 'integer', description: 'Personas that meet no value of this target.' },
            },
          },
        },
      },
    },
  },
};

const json = (schema: unknown) => ({ content: { 'application/json': { schema } } });
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const errors = (...codes: number[]) =>
  Object.fromEntries(codes.map((code) => [String(code), { description: ERROR_TEXT[code] ?? 'Error', ...json(ref('Error')) }]));
const ERROR_TEXT: Record<number, string> = {
  400: 'Malformed request body, or a control character in the path, query or body',
  401: 'Not logged in, or an unknown/revoked API token',
  403: 'CSRF token missing (session requests) or not allowed',
  404: 'No such task (or it belongs to another user)',
  409: 'The task cannot do that in its current status',
  422: 'Validation failed; `fields` holds a message per field',
  503: 'The database cannot be reached right now; try again after Retry-After seconds',
};
const idParam = { name: 'id', in: 'path', required: true, schema: { type: 'string' } };
const personaIdParam = {
  name: 'personaId',
  in: 'path',
  required: true,
  schema: { type: 'integer', minimum: 0 },
  description: 'A persona `id`.',
};
const regenerateNote =
  'Only on an ended task (completed, partial, failed or cancelled; 409 while it is pending or running). The task goes back to `pending` and the pipeline makes the replacement; every other persona and picture stays as it is. 400 when an id in the path is not a whole number, 404 when the task, persona or picture is not there (or the task is another user’s).';
const csrfNote = 'Requests authenticated by the session cookie must send the X-CSRF-Token header; requests with a Bearer token need none.';
const commonNote =
  'Every route answers 400 when the path, a query parameter or a body field holds a control character (NUL, C0, C1), a lone surrogate or bytes that are not UTF-8, and 503 with Retry-After while the database cannot be reached.';

/**
 * The OpenAPI 3 document of /api/v1. Request bodies are generated from the same zod schemas that
 * validate them (generationRequestSchema, settingsSchema); refinements that JSON Schema cannot
 * express (the language list, the allowed image counts) are added as enums.
 */
export function openApiDocument(): Record<string, unknown> {
  const request = fromZod(generationRequestSchema, 'input');
  const props = request.properties ?? {};
  props.language = {
    ...props.language,
    enum: listLanguages().map((l) => l.code),
    description: 'A language code from GET /api/v1/languages.',
  };
  props.imagesPerPersona = { ...props.imagesPerPersona, type: 'integer', enum: [...IMAGES_PER_PERSONA] };
  props.count = { ...props.count, minimum: COUNT_MIN, maximum: COUNT_MAX };
  props.imageOutput = {
    ...fromZod(imageOutputOverrideSchema, 'input'),
    description:
      "This task's Images API output options over the site settings (image_quality, image_size, image_output_format, image_output_compression, image_background); absent keys use the site's. A transparent background needs png or webp. The task's settings record what was used.",
  };
  props.targets = targetsRequest();
  const settingsIn = fromZod(settingsObjectSchema.partial(), 'input');
  const settingsOut = fromZod(settingsSchema, 'output');
  const document = {
    openapi: '3.0.3',
    info: {
      title: 'Avatar Data Generator API',
      version: '1.0.0',
      description: `Session cookie or personal API token (Authorization: Bearer agt_...). ${csrfNote} ${commonNote}`,
    },
    servers: [{ url: '/api/v1' }],
    security: [{ bearer: [] }, { session: [] }],
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'A personal API token created in Settings.' },
        session: { type: 'apiKey', in: 'cookie', name: 'avatargen.sid' },
      },
      schemas: {
        GenerationRequest: request,
        Targets: {
          ...fromZod(targetsSchema, 'output'),
          description: 'Demographic targets in the structured form; shares are weights.',
        },
        QualityReport: qualityReport,
        SettingsUpdate: settingsIn,
        Settings: settingsOut,
        Error: error,
        Task: task,
        Usage: usage,
        Progress: progress,
        Persona: persona,
        Image: image,
      },
    },
    paths: {
      '/tasks': {
        get: {
          summary: 'List your tasks, newest first',
          parameters: [
            { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 500, default: 50 } },
            { name: 'offset', in: 'query', schema: { type: 'integer', minimum: 0, default: 0 } },
            { name: 'status', in: 'query', schema: { type: 'string', enum: [...TASK_STATUSES] } },
          ],
          responses: {
            200: {
              description: 'Tasks',
              ...json({ type: 'object', properties: { tasks: { type: 'array', items: ref('Task') }, total: { type: 'integer' } } }),
            },
            ...errors(401),
          },
        },
        post: {
          summary: 'Submit a generation task',
          description: csrfNote,
          requestBody: { required: true, ...json(ref('GenerationRequest')) },
          responses: { 201: { description: 'Queued', ...json(ref('Task')) }, ...errors(400, 401, 403, 422) },
        },
      },
      '/tasks/{id}': {
        parameters: [idParam],
        get: {
          summary: 'One task with its progress',
          responses: { 200: { description: 'Task', ...json(ref('Task')) }, ...errors(401, 404) },
        },
        delete: {
          summary: 'Delete a task, its personas and images',
          responses: { 204: { description: 'Deleted' }, ...errors(401, 403, 404) },
        },
      },
      '/tasks/{id}/cancel': {
        parameters: [idParam],
        post: {
          summary: 'Cancel a pending or running task',
          responses: { 200: { description: 'Cancelled', ...json(ref('Task')) }, ...errors(401, 403, 404, 409) },
        },
      },
      '/tasks/{id}/retry': {
        parameters: [idParam],
        post: {
          summary: 'Retry an ended task that lacks something',
          description:
            'A partial, failed or cancelled task (or a completed one that lost an image since) goes back to the queue and makes only what is missing: its progress counts say what. A completed task with nothing missing answers 409.',
          responses: { 200: { description: 'Queued again', ...json(ref('Task')) }, ...errors(401, 403, 404, 409) },
        },
      },
      '/tasks/{id}/personas/{personaId}/regenerate': {
        parameters: [idParam, personaIdParam],
        post: {
          summary: 'Replace one persona of an ended task with a new one',
          description: `The persona, its pictures and their thumbnails go; its batch asks the provider for one persona again, with a new seed (and the same quota), and the new persona (a new id) gets its own pictures. ${regenerateNote} ${csrfNote}`,
          responses: { 200: { description: 'Queued again', ...json(ref('Task')) }, ...errors(401, 403, 404, 409) },
        },
      },
      '/tasks/{id}/personas/{personaId}/images/{index}/regenerate': {
        parameters: [
          idParam,
          personaIdParam,
          {
            name: 'index',
            in: 'path',
            required: true,
            schema: { type: 'integer', minimum: 0 },
            description: 'The picture’s `index` (0-based).',
          },
        ],
        post: {
          summary: 'Make one picture of an ended task’s persona again',
          description: `A new shot of the same prompt replaces that picture (a new URL); the persona's other pictures stay. ${regenerateNote} ${csrfNote}`,
          responses: { 200: { description: 'Queued again', ...json(ref('Task')) }, ...errors(401, 403, 404, 409) },
        },
      },
      '/tasks/{id}/personas': {
        parameters: [idParam],
        get: {
          summary: 'Personas of a task, paginated',
          parameters: [
            { name: 'page', in: 'query', schema: { type: 'integer', minimum: 1, default: 1 } },
            { name: 'perPage', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 100, default: 20 } },
          ],
          responses: {
            200: {
              description: 'A page',
              ...json({
                type: 'object',
                properties: {
                  personas: { type: 'array', items: ref('Persona') },
                  page: { type: 'integer' },
                  perPage: { type: 'integer' },
                  total: { type: 'integer' },
                  pages: { type: 'integer' },
                },
              }),
            },
            ...errors(401, 404),
          },
        },
      },
      '/datasets/{id}': {
        parameters: [idParam, { name: 'page', in: 'query', schema: { type: 'integer', minimum: 1, default: 1 } }],
        get: {
          summary: 'The dataset detail: task, demographics and a page of 20 personas',
          responses: { 200: { description: 'Detail', ...json({ type: 'object' }) }, ...errors(401, 404) },
        },
      },
      '/tasks/{id}/demographics': {
        parameters: [idParam],
        get: {
          summary: 'Ethnicity distribution, gender counts, age min/avg/max',
          responses: { 200: { description: 'Demographics', ...json({ type: 'object' }) }, ...errors(401, 404) },
        },
      },
      '/tasks/{id}/quality': {
        parameters: [
          idParam,
          { name: 'textThreshold', in: 'query', schema: { type: 'number', minimum: 0, exclusiveMinimum: true, maximum: 1, default: 0.7 } },
          { name: 'pictureMaxDistance', in: 'query', schema: { type: 'integer', minimum: 0, maximum: 64, default: 10 } },
        ],
        get: {
          summary:
            'The quality report, computed now: near-duplicate texts across personas (MinHash over word shingles), shared full names, near-identical pictures across personas and within one (perceptual hashes), and the personas flagged',
          responses: { 200: { description: 'Quality report', ...json(ref('QualityReport')) }, ...errors(401, 404, 422) },
        },
      },
      '/tasks/{id}/events': {
        parameters: [idParam],
        get: {
          summary: 'Server-sent events: `progress` on every change, `done` when finished',
          responses: { 200: { description: 'text/event-stream' }, ...errors(401, 404) },
        },
      },
      '/tasks/{id}/exports/{format}': {
        parameters: [idParam, { name: 'format', in: 'path', required: true, schema: { type: 'string', enum: ['json', 'csv', 'zip'] } }],
        post: {
          summary: 'Download the dataset (CSV and ZIP are streamed)',
          description: csrfNote,
          responses: { 200: { description: 'The file' }, ...errors(401, 403, 404) },
        },
      },
      '/stats': {
        get: {
          summary:
            'Your totals and the last 7 days: tasks, personas and images per day, and `costs`: the estimated cost per day at the settings prices',
          responses: { 200: { description: 'Stats', ...json({ type: 'object' }) }, ...errors(401) },
        },
      },
      '/languages': {
        get: {
          summary: 'Bio languages',
          responses: {
            200: {
              description: 'Languages',
              ...json({ type: 'array', items: { type: 'object', properties: { code: { type: 'string' }, name: { type: 'string' } } } }),
            },
          },
        },
      },
      '/settings': {
        get: { summary: 'Current settings', responses: { 200: { description: 'Settings', ...json(ref('Settings')) }, ...errors(401) } },
        patch: {
          summary: 'Change settings (administrators)',
          description: csrfNote,
          requestBody: { required: true, ...json(ref('SettingsUpdate')) },
          responses: { 200: { description: 'Saved', ...json(ref('Settings')) }, ...errors(400, 401, 403, 422) },
        },
      },
    },
  };
  // Answers every route can give (see commonNote): listed on each operation.
  for (const item of Object.values(document.paths) as Array<Record<string, { responses?: Record<string, unknown> }>>) {
    for (const operation of Object.values(item)) {
      if (!operation || typeof operation !== 'object' || !operation.responses) continue;
      operation.responses = { ...operation.responses, ...errors(400, 503), ...operation.responses };
    }
  }
  return document;
}
