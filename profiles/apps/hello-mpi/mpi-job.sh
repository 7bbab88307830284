#!/bin/sh
# Sample multi-node batch job, as a cluster user writes one: compile the MPI
# program into the shared workspace (every node sees it over NFS), then one
# rank per slot of the node file the batch system wrote.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
: "${PBS_NODEFILE:?the batch system sets PBS_NODEFILE}"
ws=${WORKSPACE:-/workspace}
dir=$(mktemp -d -p "$ws" mpi-job.XXXXXX)
# mpicc calls gcc; Debian's MPI packages bring the versioned compiler only.
OMPI_CC=${OMPI_CC:-$(command -v gcc || command -v gcc-12 || echo gcc)}
export OMPI_CC
mpicc -O2 -o "$dir/hello" "$here/src/hello.c"
ranks=$(wc -l < "$PBS_NODEFILE")
# MPIRUN_ARGS: extra mpirun options (e.g. another transport), split on spaces.
# shellcheck disable=SC2086
mpirun -np "$ranks" --hostfile "$PBS_NODEFILE" ${MPIRUN_ARGS:-} "$dir/hello"
rm -rf "$dir"
