#!/bin/sh
# compose.yaml's one-shot s3-init: MinIO as this stack needs it, with MinIO's root key (MC_HOST_s3). Safe to
# run again on every `docker compose up`: each step sets the state rather than adding to it.
#   - the bucket;
#   - its anonymous policy: GetObject on images/* and nothing else (public-read.json), replacing whatever was
#     there (`mc anonymous set download` also granted ListBucket: anyone could list every file);
#   - versioning, with a lifecycle that removes a version 1 day after it stops being current, and the delete
#     markers left alone (lifecycle.json): a deleted file is gone from the internet at once (only the current
#     version is public) and from the disk within about a day (MinIO's scanner), restorable meanwhile;
#   - the app's own user, APP_ACCESS_KEY, whose policy (app-policy.json) reaches this bucket's files only:
#     the app never holds the root key.
# Needs only /bin/sh and mc (the minio/mc image has no sed or grep).
set -eu

: "${BUCKET:?names the bucket}" "${APP_ACCESS_KEY:?is the access key of the app}" "${APP_SECRET_KEY:?is its secret}"
if [ "$APP_ACCESS_KEY" = "${ROOT_USER:-}" ]; then
  echo "s3-init: AWS_ACCESS_KEY_ID must differ from MINIO_ROOT_USER: the app gets a user of its own" >&2
  exit 1
fi
here=${0%/*}
work=${TMPDIR:-/tmp}

# A policy template with @BUCKET@ replaced by the bucket's name, on stdout.
fill() {
  while IFS= read -r line || [ -n "$line" ]; do
    done_part=""
    while :; do
      case $line in
        *@BUCKET@*)
          done_part="$done_part${line%%@BUCKET@*}$BUCKET"
          line=${line#*@BUCKET@}
          ;;
        *) break ;;
      esac
    done
    printf '%s\n' "$done_part$line"
  done <"$1"
}

fill "$here/public-read.json" >"$work/public-read.json"
fill "$here/app-policy.json" >"$work/app-policy.json"

mc mb --ignore-existing "s3/$BUCKET"
mc anonymous set-json "$work/public-read.json" "s3/$BUCKET"
mc version enable "s3/$BUCKET"
# `import` replaces the bucket's whole lifecycle configuration (`rule add` would add a rule on every run).
mc ilm rule import "s3/$BUCKET" <"$here/lifecycle.json"

mc admin policy create s3 imagery-app "$work/app-policy.json"
# `user add` sets the secret of an existing user too, so a changed AWS_SECRET_ACCESS_KEY takes effect.
mc admin user add s3 "$APP_ACCESS_KEY" "$APP_SECRET_KEY"
# `policy attach` fails when the policy is attached already (minio/mc#4863): that is the state we want.
if ! output=$(mc admin policy attach s3 imagery-app --user "$APP_ACCESS_KEY" 2>&1); then
  case $output in
    *"already in effect"*) ;;
    *)
      printf '%s\n' "$output" >&2
      exit 1
      ;;
  esac
fi
echo "s3-init: bucket $BUCKET ready; anonymous GetObject on images/* only; user $APP_ACCESS_KEY has imagery-app"
