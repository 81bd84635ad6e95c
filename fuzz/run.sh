#!/bin/sh
# Runs rampart's libFuzzer targets; `make fuzz`, `make fuzz-replay` and `make fuzz-merge`
# call it after building the binaries, and .ci/run calls `check-toolchain`.
#
#   fuzz/run.sh check-toolchain   clang-14 and its fuzzer runtime are installed
#   fuzz/run.sh replay            every committed corpus file through its target, once
#   fuzz/run.sh fuzz              each target for FUZZ_TIME seconds from its corpus
#   fuzz/run.sh merge             adds the new inputs that cover more to fuzz/corpus/
#
# Environment: FUZZ_CC (clang-14), FUZZ_TIME (60, seconds per target), FUZZ_JOBS (targets at
# once; the number of cores), FUZZ_MAX_LEN (8192),
# FUZZ_TARGETS (all), FUZZ_SRC (the source tree), FUZZ_BUILD (fuzz/build of the build tree).
#
# Fuzzing writes what it discovers to FUZZ_BUILD/corpus/<target>, never to the committed
# corpus, and a crashing input to FUZZ_BUILD/artifacts/<target>/. Every target runs even
# after one fails; the exit status is 1 if any failed, and the log names each target and
# crashing input with the command that reproduces it.
set -u

here=$(cd "$(dirname "$0")" && pwd)
FUZZ_SRC=${FUZZ_SRC:-$(dirname "$here")}
FUZZ_BUILD=${FUZZ_BUILD:-fuzz/build}
FUZZ_CC=${FUZZ_CC:-clang-14}
FUZZ_TIME=${FUZZ_TIME:-60}
FUZZ_MAX_LEN=${FUZZ_MAX_LEN:-8192}
FUZZ_TARGETS=${FUZZ_TARGETS:-"h1_request h1_response chunked h2_request conf h2_conn h2_upstream grpc_timeout websocket"}

say() { echo "fuzz: $*"; }

check_toolchain() {
    pkgs="clang-14 libclang-rt-14-dev"
    if ! command -v "$FUZZ_CC" >/dev/null 2>&1; then
        say "$FUZZ_CC not found: install the Debian packages $pkgs (apt-get install $pkgs)" >&2
        return 1
    fi
    # libFuzzer and the sanitizer runtimes come in a separate package: link a trivial target.
    tmp=$(mktemp -d) || return 1
    printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }\n' \
        >"$tmp/t.c"
    if ! "$FUZZ_CC" -fsanitize=fuzzer,address,undefined "$tmp/t.c" -o "$tmp/t" \
            >"$tmp/log" 2>&1; then
        sed 's/^/    /' "$tmp/log" >&2
        say "$FUZZ_CC cannot link a libFuzzer target with ASan and UBSan: install the" \
            "Debian packages $pkgs (apt-get install $pkgs)" >&2
        rm -rf "$tmp"
        return 1
    fi
    rm -rf "$tmp"
}

bin_of() { echo "$FUZZ_BUILD/fuzz_$1"; }

need_bin() {
    if [ ! -x "$(bin_of "$1")" ]; then
        say "$(bin_of "$1") is not built: run make fuzz-build" >&2
        return 1
    fi
}

# Every committed input once, each file named in the log before it runs. A target with
# no input is skipped: run without file arguments, a libFuzzer binary fuzzes forever.
replay() {
    failed=""
    for t in $FUZZ_TARGETS; do
        need_bin "$t" || return 1
        corpus="$FUZZ_SRC/fuzz/corpus/$t"
        n=$( { [ -d "$corpus" ] && find "$corpus" -type f; } | wc -l)
        if [ "$n" -eq 0 ]; then
            say "$t: no inputs in $corpus, nothing to replay"
            continue
        fi
        say "$t: replaying $n inputs from $corpus"
        if ! find "$corpus" -type f -print0 | sort -z |
                xargs -0 -r "$(bin_of "$t")" -timeout=10 -rss_limit_mb=2048 \
                    >"$FUZZ_BUILD/replay-$t.log" 2>&1; then
            cat "$FUZZ_BUILD/replay-$t.log"
            # the input running when the first error was reported
            input=$(awk '/^Running: / { last = substr($0, 10) }
                         /ERROR|deadly signal|contract violated|runtime error/ { print last; exit }' \
                "$FUZZ_BUILD/replay-$t.log")
            say "$t: FAILED on $input"
            say "    reproduce: $(bin_of "$t") $input"
            failed="$failed $t"
        fi
    done
    if [ -n "$failed" ]; then
        say "replay failed for:$failed"
        return 1
    fi
    say "replayed every corpus, no failure"
}

# One target for FUZZ_TIME seconds; its verdict goes to $FUZZ_BUILD/.rc-<target>.
fuzz_one() {
        t=$1
        scratch="$FUZZ_BUILD/corpus/$t"
        artifacts="$FUZZ_BUILD/artifacts/$t"
        log="$FUZZ_BUILD/fuzz-$t.log"
        mkdir -p "$scratch" "$artifacts"
        dict=""
        [ -f "$FUZZ_SRC/fuzz/$t.dict" ] && dict="-dict=$FUZZ_SRC/fuzz/$t.dict"
        # libFuzzer refuses a corpus folder that does not exist: a target without a
        # committed corpus starts from its scratch folder alone.
        seeds=""
        [ -d "$FUZZ_SRC/fuzz/corpus/$t" ] && seeds="$FUZZ_SRC/fuzz/corpus/$t"
        marker="$FUZZ_BUILD/.start-$t"
        : >"$marker"
        say "$t: fuzzing for ${FUZZ_TIME}s (new inputs in $scratch, crashes in $artifacts/)"
        # The scratch folder comes first: libFuzzer writes new inputs to its first folder.
        # shellcheck disable=SC2086
        "$(bin_of "$t")" -max_total_time="$FUZZ_TIME" -timeout=10 -rss_limit_mb=2048 \
            -max_len="$FUZZ_MAX_LEN" -print_final_stats=1 -artifact_prefix="$artifacts/" \
            $dict "$scratch" $seeds >"$log" 2>&1
        rc=$?
        grep -E '^#[0-9]+ +DONE|^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb|new_units_added)' \
            "$log" | sed "s/^/fuzz: $t: /"
        if [ "$rc" -ne 0 ]; then
            tail -n 60 "$log"
            crashes=$(find "$artifacts" -type f -newer "$marker" | sort)
            say "$t: FAILED (exit $rc); full log in $log"
            for c in $crashes; do
                say "    crashing input: $c"
                say "    reproduce: $(bin_of "$t") $c"
            done
            [ -n "$crashes" ] || say "    no input was saved (see the log above)"
        fi
        rm -f "$marker"
        echo "$rc" >"$FUZZ_BUILD/.rc-$t"
}

# The targets run FUZZ_JOBS at a time (default: one per core): each is single-threaded,
# so on a 2-core machine two at once take half the time for the same fuzzing per target.
# Each one's summary is printed when it ends, whole, so their lines do not interleave.
fuzz() {
    failed=""
    jobs_max=${FUZZ_JOBS:-$(nproc)}
    for t in $FUZZ_TARGETS; do
        need_bin "$t" || return 1
    done
    running=0
    for t in $FUZZ_TARGETS; do
        rm -f "$FUZZ_BUILD/.rc-$t"
        fuzz_one "$t" >"$FUZZ_BUILD/.out-$t" 2>&1 &
        running=$((running + 1))
        if [ "$running" -ge "$jobs_max" ]; then
            wait -n || true
            running=$((running - 1))
        fi
    done
    wait || true
    for t in $FUZZ_TARGETS; do
        cat "$FUZZ_BUILD/.out-$t"
        rc=$(cat "$FUZZ_BUILD/.rc-$t" 2>/dev/null || echo "no verdict")
        [ "$rc" = 0 ] || failed="$failed $t"
        rm -f "$FUZZ_BUILD/.out-$t" "$FUZZ_BUILD/.rc-$t"
    done
    if [ -n "$failed" ]; then
        say "fuzzing failed for:$failed"
        return 1
    fi
    say "every target ran ${FUZZ_TIME}s without a failure"
}

# Keeps the committed corpus small: only inputs that add coverage are copied in. A target
# that found nothing is skipped, and a target new to the corpus gets its folder here.
merge() {
    for t in $FUZZ_TARGETS; do
        need_bin "$t" || return 1
        found="$FUZZ_BUILD/corpus/$t"
        if [ -z "$( { [ -d "$found" ] && find "$found" -type f; } | head -n 1)" ]; then
            say "$t: no new inputs in $found, nothing to merge"
            continue
        fi
        mkdir -p "$FUZZ_SRC/fuzz/corpus/$t"
        say "$t: merging $found into $FUZZ_SRC/fuzz/corpus/$t"
        "$(bin_of "$t")" -merge=1 -timeout=10 -rss_limit_mb=2048 -max_len="$FUZZ_MAX_LEN" \
            "$FUZZ_SRC/fuzz/corpus/$t" "$found" 2>&1 | grep -E 'MERGE-OUTER: [0-9]+ new files'
    done
}

case "${1:-}" in
check-toolchain) check_toolchain ;;
replay) replay ;;
fuzz) fuzz ;;
merge) merge ;;
*)
    echo "usage: $0 check-toolchain|replay|fuzz|merge" >&2
    exit 2
    ;;
esac
