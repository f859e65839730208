#!/usr/bin/env bash
# Sets up the MinIO buckets of Avatar Data Generator with the MinIO client `mc`:
#   - the image bucket (S3_BUCKET_NAME): only objects under the image prefix (tasks/) are
#     publicly readable, by a bucket policy with s3:GetObject alone (no listing, no ACLs);
#     exports/ and everything else stay private;
#   - the reference-face bucket (S3_FACES_BUCKET_NAME): private, faces under male/ and female/.
# Safe to run again: existing buckets are kept and the policies are set to the same values.
#
# Reads S3_ENDPOINT, S3_ACCESS_KEY, S3_SECRET_KEY, S3_BUCKET_NAME, S3_FACES_BUCKET_NAME from the
# environment (e.g. `set -a; . /etc/avatargen/avatargen.env; set +a`), and optionally
# S3_PUBLIC_PREFIX (default tasks/) and MC (the mc binary, default mc).
set -euo pipefail

MC="${MC:-mc}"
: "${S3_ENDPOINT:?set S3_ENDPOINT, e.g. http://127.0.0.1:9000}"
: "${S3_ACCESS_KEY:?set S3_ACCESS_KEY}"
: "${S3_SECRET_KEY:?set S3_SECRET_KEY}"
IMAGES="${S3_BUCKET_NAME:-avatar-images}"
FACES="${S3_FACES_BUCKET_NAME:-avatar-faces}"
PREFIX="${S3_PUBLIC_PREFIX:-tasks/}"

bucket_ok='^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$'
for name in "$IMAGES" "$FACES"; do
  [[ "$name" =~ $bucket_ok ]] || { echo "setup.sh: invalid bucket name: $name" >&2; exit 2; }
done
# Same rule as the storage-s3 package: a prefix ending in "/", no wildcard, never the whole bucket.
if [[ ! "$PREFIX" =~ ^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*/$ ]] || [[ "/$PREFIX" == */../* || "/$PREFIX" == */./* ]]; then
  echo "setup.sh: S3_PUBLIC_PREFIX must look like tasks/ (letters, digits, . _ -, ending in /)" >&2
  exit 2
fi

urlencode() {
  local LC_ALL=C # byte by byte, so non-ASCII becomes its UTF-8 bytes
  local s="$1" out="" c i
  for ((i = 0; i < ${#s}; i++)); do
    c="${s:i:1}"
    case "$c" in
      [A-Za-z0-9._~-]) out+="$c" ;;
      *) out+=$(printf '%%%02X' "'$c") ;;
    esac
  done
  printf '%s' "$out"
}

# Credentials go to mc through MC_HOST_<alias> in its environment: not on a command line (where
# `ps` shows them) and not into ~/.mc/config.json.
scheme="${S3_ENDPOINT%%://*}"
hostpart="${S3_ENDPOINT#*://}"
hostpart="${hostpart%/}"
export MC_HOST_avatargen="${scheme}://$(urlencode "$S3_ACCESS_KEY"):$(urlencode "$S3_SECRET_KEY")@${hostpart}"

policy_file="$(mktemp)"
trap 'rm -f "$policy_file"' EXIT
# Keep in step with publicReadPolicy() in packages/storage-s3/src/policy.ts.
cat >"$policy_file" <<JSON
{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "PublicReadGeneratedImages",
      "Effect": "Allow",
      "Principal": { "AWS": ["*"] },
      "Action": ["s3:GetObject"],
      "Resource": ["arn:aws:s3:::${IMAGES}/${PREFIX}*"]
    }
  ]
}
JSON

echo "Image bucket ${IMAGES}: public read of ${PREFIX}* only"
"$MC" mb --ignore-existing "avatargen/${IMAGES}"
"$MC" anonymous set-json "$policy_file" "avatargen/${IMAGES}"

echo "Face bucket ${FACES}: private"
"$MC" mb --ignore-existing "avatargen/${FACES}"
"$MC" anonymous set none "avatargen/${FACES}"

echo "Anonymous policy now on ${IMAGES}:"
"$MC" anonymous get-json "avatargen/${IMAGES}"
