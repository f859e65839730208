import pg from 'pg';

/** What the database holds for one task, read with plain SQL (not through the code under test). */
export interface TaskRows {
  status: string;
  count: number;
  imagesPerPersona: number;
  run: number;
  errorLog: Array<{ stage: string; message: string }>;
  personas: number;
  /** persona_images rows. */
  images: number;
  /** Personas that have a base image and exactly imagesPerPersona image rows. */
  completePersonas: number;
  /** Every object key the rows name: base images and images. */
  keys: string[];
  /** persona id -> its image rows' (idx, created_at) as text, to tell whether a retry touched them. */
  imageStamps: Map<number, string[]>;
}

export async function query<T = Record<string, unknown>>(url: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(sql, params)).rows as T[];
  } finally {
    await client.end();
  }
}

export async function taskRows(url: string, taskId: string): Promise<TaskRows> {
  const [task] = await query<{ status: string; count: number; images_per_persona: number; run: number; error_log: TaskRows['errorLog'] }>(
    url,
    'select status, count, images_per_persona, run, error_log from generation_tasks where id = $1',
    [taskId],
  );
  if (!task) throw new Error(`no task ${taskId}`);
  const personas = await query<{ id: number; base_image_key: string | null }>(
    url,
    'select id, base_image_key from personas where task_id = $1',
    [taskId],
  );
  const images = await query<{ persona_id: number; idx: number; key: string; created_at: Date }>(
    url,
    'select persona_id, idx, key, created_at from persona_images where task_id = $1 order by persona_id, idx',
    [taskId],
  );
  const imageStamps = new Map<number, string[]>();
  for (const image of images) {
    const list = imageStamps.get(image.persona_id) ?? [];
    list.push(`${image.idx}@${image.created_at.toISOString()}`);
    imageStamps.set(image.persona_id, list);
  }
  const completePersonas = personas.filter(
    (p) => p.base_image_key && (imageStamps.get(p.id)?.length ?? 0) === task.images_per_persona,
  ).length;
  return {
    status: task.status,
    count: task.count,
    imagesPerPersona: task.images_per_persona,
    run: task.run,
    errorLog: task.error_log,
    personas: personas.length,
    images: images.length,
    completePersonas,
    keys: [...personas.flatMap((p) => (p.base_image_key ? [p.base_image_key] : [])), ...images.map((i) => i.key)].sort(),
    imageStamps,
  };
}
