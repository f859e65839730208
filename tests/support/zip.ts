import { readFile } from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import yauzl from 'yauzl';

/** Every entry of the ZIP file at `path`, after checking each against its CRC-32 (yauzl does not). */
export async function unzipFile(path: string): Promise<Map<string, Buffer>> {
  const buffer = await readFile(path);
  return new Promise((resolve, reject) => {
    yauzl.fromBuffer(buffer, { lazyEntries: true }, (error, zip) => {
      if (error || !zip) return reject(error);
      const files = new Map<string, Buffer>();
      zip.on('entry', (entry: yauzl.Entry) => {
        zip.openReadStream(entry, (err, stream) => {
          if (err || !stream) return reject(err);
          const chunks: Buffer[] = [];
          stream.on('data', (chunk: Buffer) => chunks.push(chunk));
          stream.on('error', reject);
          stream.on('end', () => {
            const data = Buffer.concat(chunks);
            if (crc32(data) !== entry.crc32) return reject(new Error(`${entry.fileName}: CRC-32 does not match its bytes`));
            files.set(entry.fileName, data);
            zip.readEntry();
          });
        });
      });
      zip.on('end', () => resolve(files));
      zip.on('error', reject);
      zip.readEntry();
    });
  });
}

/** What a dataset ZIP holds: its image entries (base selfies included) and the manifest's missing list. */
export async function datasetZipSummary(path: string): Promise<{ images: number; missing: string[]; status: string }> {
  const files = await unzipFile(path);
  const manifest = JSON.parse(files.get('manifest.json')?.toString('utf8') ?? '{}') as {
    task?: { status?: string };
    missing?: string[];
  };
  const images = [...files.keys()].filter((name) => /\/images\/\d+\.(png|jpe?g|webp)$/.test(name)).length;
  return { images, missing: manifest.missing ?? [], status: manifest.task?.status ?? '' };
}
