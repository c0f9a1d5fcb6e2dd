#!/usr/bin/env bash
# The MPI tests (tests/mpi.rs, feature `mpi`) on localhost: builds the test
# program and runs it as `mpirun --oversubscribe -np 2` and `-np 3` (with 3
# ranks the order of the additions shows), then checks that a rank that panics
# ends the whole job (non-zero) instead of hanging it.
# Needs Open MPI and libclang (Debian: openmpi-bin libopenmpi-dev libclang-dev);
# .ci/run installs them when they are missing. MPI_RANKS="2 4" picks the sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
ranks="${MPI_RANKS:-2 3}"

# Open MPI refuses to run as root unless told; in containers its shared-memory
# transport may lack the kernel's single-copy support (CMA).
if [ "$(id -u)" = 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OMPI_MCA_btl_vader_single_copy_mechanism=none

# --all-features (mpi is one of them): in CI the library is then already built
# with these features by the steps before, and is not built once more.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
build_ok=0
cargo test --all-features --test mpi --no-run 2>"$log" || build_ok=$?
cat "$log" >&2
exe=$(sed -n 's/^ *Executable .*(\(.*\))$/\1/p' "$log")
if [ "$build_ok" != 0 ] || [ -z "$exe" ] || [ ! -x "$exe" ]; then
    echo "mpi_test: could not build tests/mpi.rs" >&2
    exit 1
fi

for n in $ranks; do
    echo "mpi_test: mpirun -np $n $exe"
    timeout 300 mpirun --oversubscribe -np "$n" "$exe"
done

# A crashed rank aborts the job: rank 1 panics while rank 0 waits in a barrier.
echo "mpi_test: a rank that panics must end the job (an abort message follows)"
set +e
timeout 60 mpirun --oversubscribe -np 2 "$exe" crash
code=$?
set -e
if [ "$code" = 0 ] || [ "$code" = 124 ]; then
    echo "mpi_test: FAILED: the crash run exited with $code (0: not aborted, 124: hung)" >&2
    exit 1
fi
echo "mpi_test: the crash run ended the job with exit code $code, as it should"
