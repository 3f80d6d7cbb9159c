# Sourced by the set-up scripts: a finished set-up (a virtual environment, a ComfyUI host) is kept outside the
# clone, in a folder named by the hash of everything that decides its contents (the set-up scripts, the pins,
# the release tarball), and the clone's path is a symlink to it. A second clone with the same inputs gets it in
# a second; any change to those inputs makes a new folder. Nothing is ever changed in a finished folder.
#
#   WAN_SETUP_CACHE=DIR   keep them in DIR (default: ${XDG_CACHE_HOME:-~/.cache}/wan-image-dev-setup)
#   WAN_SETUP_CACHE=off   build inside the clone, as a machine without the cache would (the cold time)
#
# cached_build LINK NAME KEY BUILD: makes LINK (a path inside the clone) the finished result of `BUILD DIR`,
# kept as NAME-KEY in the cache.
# BUILD is a shell function that fills DIR, which does not exist yet; it runs under a lock, so two clones
# setting up at once build it once.

setup_cache_root() {
  case "${WAN_SETUP_CACHE:-}" in
    off | 0 | no | false) echo "" ;;
    "") echo "${XDG_CACHE_HOME:-$HOME/.cache}/wan-image-dev-setup" ;;
    *) echo "$WAN_SETUP_CACHE" ;;
  esac
}

# The key: a hash of the files and words given (missing files count as their name).
setup_key() {
  local item
  for item in "$@"; do
    if [ -f "$item" ]; then sha256sum < "$item"; else echo "$item"; fi
  done | sha256sum | cut -c1-16
}

cached_build() {
  local link=$1 name=$2 key=$3 build=$4 root target
  root=$(setup_cache_root)
  if [ -z "$root" ]; then
    if [ -f "$link/.built-$key" ] && [ ! -L "$link" ]; then return 0; fi
    rm -rf "$link"
    mkdir -p "$(dirname "$link")"
    "$build" "$link"
    touch "$link/.built-$key"
    return 0
  fi
  target="$root/$name-$key"
  mkdir -p "$root" "$(dirname "$link")"
  (
    flock 9
    if [ ! -f "$target/.built" ]; then
      rm -rf "$target"
      "$build" "$target"
      touch "$target/.built"
    fi
  ) 9> "$target.lock"
  if [ "$(readlink "$link" 2>/dev/null)" != "$target" ]; then
    rm -rf "$link"
    ln -s "$target" "$link"
  fi
}
