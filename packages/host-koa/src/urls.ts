/** The host's URL of an image's gallery thumbnail (served with the same access check as the image). */
export function thumbnailUrl(key: string): string {
  return `/thumbs/${key.split('/').map(encodeURIComponent).join('/')}`;
}
