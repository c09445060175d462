#!/usr/bin/env bash
# The installed package, tested as another project uses it: install this build into a temporary
# prefix, check what was installed, configure and build examples/ as a separate CMake project against
# it, and run both examples.
#   test_install.sh BUILD_DIR EXAMPLES_DIR SOURCE_DIR [CXX_FLAGS [LINKER_FLAGS]]
# CXX_FLAGS and LINKER_FLAGS are the build's own (a sanitizer build's library needs its runtime in
# the programs that link it).
set -euo pipefail
build=$1 examples=$2 source=$3 cxx_flags=${4:-} linker_flags=${5:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

cmake --install "$build" --prefix "$prefix" > "$work/install.log"
echo "installed into $prefix: $(find "$prefix/include" -name '*.h' | wc -l) headers"
for f in include/birdplane/birdplane.h include/birdplane/version.h lib/libbirdplane.a \
         lib/cmake/birdplane/birdplaneConfig.cmake lib/cmake/birdplane/birdplaneConfigVersion.cmake \
         lib/cmake/birdplane/birdplaneTargets.cmake bin/birdplane; do
  [ -e "$prefix/$f" ] || { echo "FAIL: $f was not installed"; exit 1; }
done
# Internals stay private: no kernels, fused step, huge-page memory or font among the headers.
for f in train/linear_kernels.h train/fused_step.h data/memory.h common/huge_buffers.h data/font.h; do
  [ ! -e "$prefix/include/birdplane/$f" ] || { echo "FAIL: private header $f was installed"; exit 1; }
done
# Every installed header compiles on its own (no private include, no missing include).
grep -rhoE '#include "[^"]+"' "$prefix/include/birdplane" | sort -u | while read -r _ inc; do
  inc=${inc//\"/}
  [ -e "$prefix/include/$inc" ] || { echo "FAIL: an installed header includes $inc, which is not installed"; exit 1; }
done

generator=()
command -v ninja > /dev/null && generator=(-G Ninja)
cmake -S "$examples" -B "$work/build" "${generator[@]}" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_CXX_FLAGS="$cxx_flags" -DCMAKE_EXE_LINKER_FLAGS="$linker_flags" > "$work/configure.log" \
  || { cat "$work/configure.log"; echo "FAIL: the examples do not configure against the installed package"; exit 1; }
cmake --build "$work/build" -j 2 > "$work/build.log" 2>&1 \
  || { tail -50 "$work/build.log"; echo "FAIL: the examples do not build against the installed package"; exit 1; }

# A small fake CIFAR-10 folder (the official binary layout), or the real data when it is there.
python=/usr/bin/python3
[ -x "$python" ] || python=python3
data=$work/data
"$python" - "$data" <<'PY'
import os, sys
folder = os.path.join(sys.argv[1], "cifar-10-batches-bin")
os.makedirs(folder)
def write(name, count, base):
    with open(os.path.join(folder, name), "wb") as f:
        for i in range(count):
            label = (base + i) % 10
            f.write(bytes([label]) + bytes((label * 25 + (j * 7 + i) % 40) % 256 for j in range(3072)))
for k in range(1, 6):
    write(f"data_batch_{k}.bin", 40, 100 * k)
write("test_batch.bin", 40, 0)
PY
if [ -n "${BIRDPLANE_DATA:-}" ]; then data=$BIRDPLANE_DATA; fi

"$work/build/train_cifar2" "$data" 1 "$work/run" > "$work/train.out"
cat "$work/train.out"
grep -q "validation accuracy" "$work/train.out" || { echo "FAIL: train_cifar2 printed no accuracy"; exit 1; }
for f in config.json metrics.csv checkpoint.pt model.pt results.json; do
  [ -e "$work/run/$f" ] || { echo "FAIL: train_cifar2 wrote no $f"; exit 1; }
done

"$prefix/bin/birdplane" show --data-dir "$work/data" --index 3 --scale 2 --out "$work/in.png" > /dev/null
"$work/build/apply_transforms" "$work/in.png" "$work/out.png" "RandomHorizontalFlip(p=1.0), Resize(48)" 5 \
  | tee "$work/apply.out"
[ -s "$work/out.png" ] || { echo "FAIL: apply_transforms wrote no image"; exit 1; }
grep -q "\[3, 48, 48\]" "$work/apply.out" || { echo "FAIL: apply_transforms did not resize to 48x48"; exit 1; }
# In-tree use: a project that pulls birdplane in with add_subdirectory gets the same target name, and
# birdplane then configures no tests or benchmarks of its own (configured only, not built).
mkdir -p "$work/consumer"
cat > "$work/consumer/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.25)
project(consumer LANGUAGES CXX)
add_subdirectory(${BIRDPLANE_SRC} birdplane)
if(NOT TARGET birdplane::birdplane)
  message(FATAL_ERROR "add_subdirectory(birdplane) defines no birdplane::birdplane")
endif()
if(TARGET birdplane_tests OR TARGET birdplane_bench)
  message(FATAL_ERROR "birdplane built its tests or benchmarks inside another project")
endif()
add_executable(app app.cpp)
target_link_libraries(app PRIVATE birdplane::birdplane)
CMAKE
echo 'int main() {}' > "$work/consumer/app.cpp"
cmake -S "$work/consumer" -B "$work/consumer-build" "${generator[@]}" -DBIRDPLANE_SRC="$source" \
  > "$work/consumer.log" 2>&1 || { cat "$work/consumer.log"; echo "FAIL: add_subdirectory(birdplane) does not configure"; exit 1; }
echo "the installed package builds and runs the examples; add_subdirectory gives birdplane::birdplane"
