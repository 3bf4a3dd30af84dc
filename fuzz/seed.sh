#!/usr/bin/env bash
# Seeds every fuzz corpus from the project's own samples (idempotent):
#   corpus/events           every events/<function>/*.json
#   corpus/user_parameters  the UserParameters strings of events/pipeline-action/*.json
#   corpus/check_spec       ```yaml blocks with `checks:` in docs/*.md, the inline
#                           specs of the pipeline-action samples, fuzz/seeds/check_spec/*
#   corpus/notifier_rules   the example in shared/tollgate-notify/src/rules.rs, ```yaml blocks
#                           with `routes:` in docs/*.md, and fuzz/seeds/notifier_rules/*
set -euo pipefail
fuzz="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$fuzz")"
cd "$root"
for t in events user_parameters check_spec notifier_rules; do mkdir -p "fuzz/corpus/$t"; done

cp events/*/*.json fuzz/corpus/events/

python3 - <<'PY'
import glob, hashlib, json, os, re

def put(target, text):
    data = text.encode()
    name = hashlib.sha1(data).hexdigest()[:16]
    with open(f"fuzz/corpus/{target}/{name}", "wb") as f:
        f.write(data)

for path in sorted(glob.glob("events/pipeline-action/*.json")):
    job = json.load(open(path)).get("CodePipeline.job", {})
    params = job.get("data", {}).get("actionConfiguration", {}).get("configuration", {}).get("UserParameters")
    if isinstance(params, str):
        put("user_parameters", params)
        try:
            spec = json.loads(params).get("spec")
        except (ValueError, AttributeError):
            spec = None
        if spec is not None:
            put("check_spec", spec if isinstance(spec, str) else json.dumps(spec))

blocks = []
for path in sorted(glob.glob("docs/*.md")):
    blocks += re.findall(r"```ya?ml\n(.*?)```", open(path).read(), re.S)
for b in blocks:
    if "checks:" in b:
        put("check_spec", b)
    if "routes:" in b or "notify:" in b:
        put("notifier_rules", b)

src = open("shared/tollgate-notify/src/rules.rs").read()
m = re.search(r"//! ```yaml\n(.*?)//! ```", src, re.S)
if m:
    put("notifier_rules", "".join(l[4:] + "\n" for l in m.group(1).splitlines()))
for target in ("check_spec", "notifier_rules"):
    for path in sorted(glob.glob(f"fuzz/seeds/{target}/*")):
        put(target, open(path).read())
PY

for t in events user_parameters check_spec notifier_rules; do
  printf '%-16s %3d seed files\n' "$t" "$(find "fuzz/corpus/$t" -type f | wc -l)"
done
