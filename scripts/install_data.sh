#!/bin/sh
# Install what the main job needs from the system, only where it is missing:
#   - Fashion-MNIST from Debian's package dataset-fashion-mnist (into
#     /usr/share/datasets/fashion-mnist), unless gluon-bn can already find the four files;
#   - python3-venv, when python3 cannot create a virtualenv (Debian ships venv's pip
#     bootstrap, ensurepip, separately);
#   - g++, when no C++ compiler is found ($CXX, c++, g++): only the scratch layer's
#     impl="native" (a C++ operator compiled on first use) needs one;
#   - chromium and chromium-driver, when /usr/bin lacks them: the website's browser test
#     (tests/test_site.py) opens the built site in Debian's headless Chromium;
#   - fonts-wqy-microhei, when fontconfig knows no Chinese font (or Chromium comes now):
#     without one the d2l-zh pages' Chinese title shows as empty boxes in that browser.
#
# apt-get runs directly when we are root, through sudo when we are not and sudo exists.
# Where apt-get, root and sudo are all unavailable, or the install fails, it says what to
# do instead and still exits 0: gluon-bn downloads Fashion-MNIST on first use when the
# machine is online, and `--data-root DIR` reads the four IDX files from any directory.
#
# Usage: sh scripts/install_data.sh [--dry-run]
#   --dry-run   print the apt-get commands instead of running them
#
# Environment: GLUON_BN_DATA and MXNET_HOME are honoured as gluon-bn honours them; so is
# CXX (a C++ compiler other than c++ or g++);
# GLUON_BN_BROWSER_DIR replaces /usr/bin where chromium and chromedriver are looked for (tests);
# GLUON_BN_DATASET_DIR replaces /usr/share/datasets/fashion-mnist (for tests).
# POSIX sh (tested under dash and bash).

set -u

PACKAGE=dataset-fashion-mnist
SYSTEM_DIR=${GLUON_BN_DATASET_DIR:-/usr/share/datasets/fashion-mnist}
BROWSER_DIR=${GLUON_BN_BROWSER_DIR:-/usr/bin}
CJK_FONT=fonts-wqy-microhei
FILES="train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte"
DRY_RUN=0

for arg in "$@"; do
    case $arg in
        --dry-run) DRY_RUN=1 ;;
        -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install_data.sh: unknown option $arg (try --help)" >&2; exit 2 ;;
    esac
done

say() { printf 'install_data.sh: %s\n' "$*"; }

# True when directory $1 holds the four files, each plain or gzipped.
has_files() {
    for f in $FILES; do
        [ -f "$1/$f" ] || [ -f "$1/$f.gz" ] || return 1
    done
    return 0
}

# Print the first directory, in gluon-bn's search order, that holds the data.
find_data() {
    if [ -n "${GLUON_BN_DATA:-}" ]; then
        for d in "$GLUON_BN_DATA" "$GLUON_BN_DATA/fashion-mnist"; do
            if has_files "$d"; then echo "$d"; return 0; fi
        done
    fi
    d="${MXNET_HOME:-${HOME:-/nonexistent}/.mxnet}/datasets/fashion-mnist"
    if has_files "$d"; then echo "$d"; return 0; fi
    if has_files "$SYSTEM_DIR"; then echo "$SYSTEM_DIR"; return 0; fi
    return 1
}

# Say why nothing was installed ($1) and what to do instead, for each package in $need.
advise() {
    say "$1"
    case " $need " in
        *" $PACKAGE "*) cat <<EOF
  Fashion-MNIST can still reach gluon-bn in any of these ways:
  - online: gluon-bn downloads it on first use (into \${MXNET_HOME:-~/.mxnet}/datasets)
    and verifies it;
  - offline: put the four IDX files, plain or .gz,
      $FILES
    in a directory DIR and pass --data-root DIR (or set GLUON_BN_DATA=DIR);
  - on Debian/Ubuntu, as root: apt-get install -y $PACKAGE
EOF
        ;;
    esac
    case " $need " in
        *" python3-venv "*) cat <<EOF
  python3 cannot create a virtualenv here: on Debian/Ubuntu, as root,
  apt-get install -y python3-venv; elsewhere, use a Python 3.9-3.11 with the venv module.
EOF
        ;;
    esac
    case " $need " in
        *" g++ "*) cat <<EOF
  No C++ compiler: everything but --bn-impl native works without one (its tests skip);
  on Debian/Ubuntu, as root, apt-get install -y g++, or set CXX to a compiler.
EOF
        ;;
    esac
    case " $need " in
        *" chromium"*) cat <<EOF
  No Chromium in $BROWSER_DIR: the site builds without it, and its browser test skips;
  on Debian, as root, apt-get install -y chromium chromium-driver.
EOF
        ;;
    esac
    case " $need " in
        *" $CJK_FONT "*) cat <<EOF
  No Chinese font: the site still builds and its tests pass, but Chromium draws the d2l-zh
  title as boxes; on Debian, as root, apt-get install -y $CJK_FONT.
EOF
        ;;
    esac
}

need=""
if data_dir=$(find_data); then
    say "Fashion-MNIST is already there: $data_dir"
else
    need=$PACKAGE
fi

if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    need="$need python3-venv"
fi
if [ -z "${CXX:-}" ] && ! command -v c++ >/dev/null 2>&1 && ! command -v g++ >/dev/null 2>&1; then
    need="$need g++"
fi
[ -x "$BROWSER_DIR/chromium" ] || need="$need chromium"
[ -x "$BROWSER_DIR/chromedriver" ] || need="$need chromium-driver"
if command -v fc-list >/dev/null 2>&1; then
    [ -n "$(fc-list :lang=zh family 2>/dev/null)" ] || need="$need $CJK_FONT"
else  # no fontconfig yet: Chromium brings it, and no Chinese font with it
    case " $need " in *" chromium "*) need="$need $CJK_FONT" ;; esac
fi
need=${need# }
if [ -z "$need" ]; then
    say "nothing to install."
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    advise "apt-get is not available here: not installing $need."
    exit 0
fi

if [ "$(id -u)" = 0 ]; then
    as_root=""
elif command -v sudo >/dev/null 2>&1; then
    as_root="sudo"
else
    advise "not root and no sudo: cannot run apt-get install $need."
    exit 0
fi

run() {
    say "running: $*"
    [ "$DRY_RUN" = 1 ] && return 0
    "$@"
}

# An `apt-get update` only when apt does not know a package yet (fresh images have no lists).
for p in $need; do
    if ! apt-cache show "$p" >/dev/null 2>&1; then
        run $as_root apt-get update || true
        break
    fi
done

# shellcheck disable=SC2086  # $as_root and $need split on purpose
if ! run $as_root apt-get install -y $need; then
    advise "apt-get install $need failed (see its message above)."
    exit 0
fi

if [ "$DRY_RUN" = 0 ]; then
    case " $need " in
        *" $PACKAGE "*)
            if has_files "$SYSTEM_DIR"; then
                say "Fashion-MNIST installed in $SYSTEM_DIR"
            else
                advise "$PACKAGE is installed but $SYSTEM_DIR lacks the four files."
            fi ;;
    esac
fi
exit 0
