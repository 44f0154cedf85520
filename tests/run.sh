#!/usr/bin/env bash
# THE test command: sudo tests/run.sh
# Installs missing prerequisites, builds Release, runs every test project in Appliance.sln (unit and
# integration), and ends with one line: "N passed, M failed, K skipped". Exits non-zero if anything
# failed, if nothing passed, or if a project failed to build or run.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
LAB="$REPO/appliance/lab/lab.sh"
RESULTS="$REPO/artifacts/test-results"

is_root() { [[ $(id -u) -eq 0 ]]; }
cleanup() { if is_root; then "$LAB" down >/dev/null 2>&1 || true; fi; }
trap cleanup EXIT

if is_root; then
    "$LAB" prereqs
    # One test run (and one lab) at a time on this machine: wait for another run to finish.
    exec 9>/run/isthmus-lab.lock
    if ! flock -n 9; then
        echo "[run] another lab user holds /run/isthmus-lab.lock; waiting (up to 15 min)" >&2
        flock -w 900 9 || { echo "[run] the lab lock is still held" >&2; echo "0 passed, 1 failed, 0 skipped"; exit 1; }
    fi
    export ISTHMUS_LAB_LOCKED=1
    "$LAB" down >/dev/null 2>&1 || true   # never start on top of a stale lab
else
    echo "[run] not root: prerequisites are not installed and the integration tests will not run" >&2
fi
command -v dotnet >/dev/null || { echo "[run] dotnet (SDK 10) is not on PATH" >&2; echo "0 passed, 1 failed, 0 skipped"; exit 1; }

rm -rf "$RESULTS"
mkdir -p "$RESULTS"

build_failed=0
echo "[run] dotnet build Appliance.sln -c Release" >&2
if dotnet build Appliance.sln -c Release -nologo -v q -clp:ErrorsOnly >&2; then
    export ISTHMUS_LAB_NO_BUILD=1   # the integration fixture reuses this build
else
    build_failed=1
    echo "[run] the solution build failed; trying each test project on its own" >&2
fi

mapfile -t projects < <(dotnet sln Appliance.sln list | tr '\\' '/' | grep -E '\.Tests\.csproj$' | sort)
if ((${#projects[@]} == 0)); then
    echo "[run] no test projects in Appliance.sln" >&2
    echo "0 passed, 1 failed, 0 skipped"
    exit 1
fi

failed_projects=()
for proj in "${projects[@]}"; do
    name=$(basename "$proj" .csproj)
    echo "[run] dotnet test $proj" >&2
    build_flag=(--no-build)
    ((build_failed)) && build_flag=()
    if ! dotnet test "$proj" -c Release "${build_flag[@]}" -nologo \
        --logger "trx;LogFileName=$name.trx" --results-directory "$RESULTS" \
        --blame-hang-timeout 10m >&2; then
        failed_projects+=("$name")
    fi
done

passed=0 failed=0 skipped=0
attr() { grep -o "<Counters [^>]*" "$2" | grep -o " $1=\"[0-9]*\"" | grep -o '[0-9]*' || echo 0; }
for proj in "${projects[@]}"; do
    name=$(basename "$proj" .csproj)
    trx="$RESULTS/$name.trx"
    if [[ ! -f $trx ]]; then
        echo "[run] $name: no results (failed to build or run)" >&2
        # Counted as a failure unless already in failed_projects below.
        [[ " ${failed_projects[*]} " == *" $name "* ]] || failed_projects+=("$name")
        failed=$((failed + 1))
        continue
    fi
    t=$(attr total "$trx"); p=$(attr passed "$trx"); f=$(attr failed "$trx")
    e=$(( $(attr error "$trx") + $(attr timeout "$trx") + $(attr aborted "$trx") ))
    f=$((f + e))
    s=$((t - p - f)); ((s < 0)) && s=0
    echo "[run] $name: $p passed, $f failed, $s skipped" >&2
    if [[ " ${failed_projects[*]} " == *" $name "* ]] && ((f == 0)); then
        echo "[run] $name: dotnet test exited non-zero with no failed test (crash or hang?)" >&2
        f=1
    fi
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
done

cleanup
trap - EXIT
rc=0
if ((failed > 0 || passed == 0 || ${#failed_projects[@]} > 0 || build_failed)); then rc=1; fi
((build_failed)) && echo "[run] the solution build failed" >&2
echo "$passed passed, $failed failed, $skipped skipped"
exit $rc
