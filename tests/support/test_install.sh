#!/usr/bin/env bash
# The installed package, tested as another project uses it: install this build into a temporary
# prefix, check what was installed, configure and build examples/ as a separate CMake project against
# it, and run the examples.
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
# The umbrella header names every installed header.
for h in $(cd "$prefix/include" && find birdplane -name '*.h' ! -name birdplane.h | sort); do
  grep -q "#include \"$h\"" "$prefix/include/birdplane/birdplane.h" \
    || { echo "FAIL: birdplane/birdplane.h does not include $h"; exit 1; }
done
# Every installed header includes only installed headers...
grep -rhoE '#include "[^"]+"' "$prefix/include/birdplane" | sort -u | while read -r _ inc; do
  inc=${inc//\"/}
  [ -e "$prefix/include/$inc" ] || { echo "FAIL: an installed header includes $inc, which is not installed"; exit 1; }
done

generator=()
command -v ninja > /dev/null && generator=(-G Ninja)
# Both projects below compile through ccache when there is one, given on their command line (examples/
# CMakeLists.txt is what a user copies, and stays plain), with every path below CCACHE_BASEDIR=$work so
# that a clone elsewhere hits the same entries.
launcher=()
command -v ccache > /dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
# ... and compiles on its own in a consumer project: one source file per header, including just it
# (through ccache, so unchanged headers cost nothing the next time; at -O0, since only the compiling
# matters). Once, in the plain build: a sanitizer build's headers are the same.
if [ -z "$cxx_flags" ]; then
mkdir -p "$work/headers"
{
  echo 'cmake_minimum_required(VERSION 3.25)'
  echo 'project(each_header LANGUAGES CXX)'
  echo 'set(CMAKE_CXX_STANDARD 17)'
  echo 'find_package(birdplane 0.3 REQUIRED)'
  echo 'add_library(each_header OBJECT'
  for h in $(cd "$prefix/include" && find birdplane -name '*.h' | sort); do
    src=$(echo "$h" | tr '/.' '__').cpp
    echo "#include <$h>" > "$work/headers/$src"
    echo "  $src"
  done
  echo ')'
  echo 'target_link_libraries(each_header PRIVATE birdplane::birdplane)'
} > "$work/headers/CMakeLists.txt"
cmake -S "$work/headers" -B "$work/headers-build" "${generator[@]}" "${launcher[@]}" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_BUILD_TYPE= -DCMAKE_CXX_FLAGS=-O0 > "$work/headers.log" 2>&1 \
  && CCACHE_BASEDIR="$work" CCACHE_NOHASHDIR=true cmake --build "$work/headers-build" -j 2 >> "$work/headers.log" 2>&1 \
  || { tail -40 "$work/headers.log"; echo "FAIL: an installed header does not compile on its own"; exit 1; }
echo "each of the $(find "$prefix/include" -name '*.h' | wc -l) installed headers compiles on its own"
fi
# The examples from a copy in the work folder (below CCACHE_BASEDIR, see above).
cp -r "$examples" "$work/examples"
cmake -S "$work/examples" -B "$work/build" "${generator[@]}" "${launcher[@]}" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_CXX_FLAGS="$cxx_flags" -DCMAKE_EXE_LINKER_FLAGS="$linker_flags" > "$work/configure.log" \
  || { cat "$work/configure.log"; echo "FAIL: the examples do not configure against the installed package"; exit 1; }
CCACHE_BASEDIR="$work" CCACHE_NOHASHDIR=true cmake --build "$work/build" -j 2 > "$work/build.log" 2>&1 \
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

# train_folder on a small folder of pictures of two classes, of several sizes and formats.
"$python" - "$work/photos" <<'PY'
import os, sys
from PIL import Image
for c, (name, colour) in enumerate([("cats", (200, 60, 40)), ("dogs", (40, 80, 200))]):
    os.makedirs(os.path.join(sys.argv[1], name))
    for i in range(12):
        w, h = 20 + 3 * i, 28 + 2 * (i % 5)
        img = Image.new("RGB", (w, h), tuple((v + 7 * i) % 256 for v in colour))
        for x in range(0, w, 4):
            img.putpixel((x, h // 2), (255, 255, 255))
        img.save(os.path.join(sys.argv[1], name, f"{i}.{'png' if i % 2 else 'jpg'}"))
PY
"$work/build/train_folder" "$work/photos" 3 "$work/folder-run" > "$work/folder.out"
cat "$work/folder.out"
grep -q "validation accuracy" "$work/folder.out" || { echo "FAIL: train_folder printed no accuracy"; exit 1; }
grep -qE "photos/(cats|dogs)/0.jpg: (cats|dogs) \(" "$work/folder.out" \
  || { echo "FAIL: train_folder classified no image"; exit 1; }
for f in config.json metrics.csv checkpoint.pt model.pt results.json; do
  [ -e "$work/folder-run/$f" ] || { echo "FAIL: train_folder wrote no $f"; exit 1; }
done
# classify: the Predictor on that model, with two of the pictures (their own sizes; the model file says how
# to bring them to the model's).
"$work/build/classify" "$work/folder-run/model.pt" "$work/photos/cats/3.png" "$work/photos/dogs/4.jpg" \
  | tee "$work/classify.out"
grep -qE "photos/cats/3.png: (cats|dogs) [0-9.e-]+ (cats|dogs) [0-9.e-]+$" "$work/classify.out" \
  || { echo "FAIL: classify printed no classes for cats/3.png"; exit 1; }
[ "$(wc -l < "$work/classify.out")" -eq 2 ] || { echo "FAIL: classify did not classify both images"; exit 1; }
if "$work/build/classify" "$work/folder-run/model.pt" "$work/photos" > /dev/null 2> "$work/classify.err"; then
  echo "FAIL: classify accepted a folder as an image"; exit 1
fi
grep -q "error: " "$work/classify.err" || { echo "FAIL: classify gave no error for a folder"; exit 1; }

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
