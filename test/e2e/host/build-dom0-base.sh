#!/bin/bash
# Build the boot files that depend only on the downloaded packages:
#   $IMAGES/xen                 uncompressed Xen (QEMU's multiboot loader cannot read .gz)
#   $IMAGES/vmlinuz             Debian's 6.1 kernel, booted as dom0
#   $IMAGES/dom0-base.cpio.zst  busybox dom0 root: Xen tools (xl, xenstored, xenconsoled,
#                               xenstore-*, the per-domain QEMU), socat, Debian's node 18,
#                               each with its shared-library closure; Xen kernel modules;
#                               the guest kernel (ELF, unpacked) at /boot/guest/vmlinux.
# The harness itself (init, runner, scenarios) is appended per run by host/assemble.sh.
# Cached: keyed on this script and the unpacked package set.
source "$(dirname "$0")/common.sh"

image="$IMAGES/dom0-base.cpio.zst"
key=$(key_of "$0" "$STAGE/.key")
if [ "$(cat "$image.key" 2>/dev/null)" = "$key" ] && [ -f "$IMAGES/xen" ]; then
    log "dom0 base image: cached ($image)"
    exit 0
fi
mkdir -p "$IMAGES"
KVER=$(ls "$STAGE/lib/modules" | sort -V | tail -1)
zcat "$STAGE/boot/xen-$XENVER-amd64.gz" > "$IMAGES/xen"
cp "$STAGE/boot/vmlinuz-$KVER" "$IMAGES/vmlinuz"

LDSO="$STAGE/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
LIBPATH="$STAGE/lib/x86_64-linux-gnu:$STAGE/usr/lib/x86_64-linux-gnu"
R="$E2E_CACHE/dom0-root"

# copy_elf FILE...: copy FILE (a path inside $STAGE) and its shared-library closure,
# resolved with the staged glibc's ld.so (never the host's libraries).
copy_elf() {
    local f lib
    for f in "$@"; do
        install -D -m755 "$(readlink -f "$STAGE$f")" "$R$f"
        "$LDSO" --library-path "$LIBPATH" --list "$STAGE$f" | awk '/=> \// { print $3 }' |
        while read -r lib; do
            case "$lib" in "$STAGE"/*) ;; *) die "$f needs $lib, which is not in the staged packages";; esac
            [ -e "$R${lib#"$STAGE"}" ] || install -D -m755 "$(readlink -f "$lib")" "$R${lib#"$STAGE"}"
        done
    done
}

rm -rf "$R"
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,run,tmp,etc,root,var,boot/guest,lib64,lib/modules}
install -m755 "$STAGE/bin/busybox" "$R/bin/busybox"
for a in $("$R/bin/busybox" --list); do [ -e "$R/bin/$a" ] || ln -s busybox "$R/bin/$a"; done
ln -s ../run "$R/var/run"
echo 'root:x:0:0:root:/root:/bin/sh' > "$R/etc/passwd"
echo 'root:x:0:' > "$R/etc/group"

XB=/usr/lib/xen-$XENVER/bin
copy_elf $XB/xl $XB/xenstored $XB/xenconsoled $XB/xen-init-dom0 $XB/xenconsole \
         /usr/bin/xenstore /usr/libexec/xen-qemu-system-i386 /usr/bin/socat /usr/bin/node
# Debian's node loads some builtins (cjs-module-lexer, undici, acorn) from
# /usr/share/nodejs at run time ("Cannot load externalized builtin" otherwise).
grep -aohE '/usr/share/nodejs/[A-Za-z0-9_./-]+\.js' "$STAGE"/usr/lib/x86_64-linux-gnu/libnode.so.* | sort -u |
    while read -r f; do install -D -m644 "$(readlink -f "$STAGE$f")" "$R$f"; done
install -D -m755 "$LDSO" "$R/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
ln -s /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$R/lib64/ld-linux-x86-64.so.2"
# xenstore-* are one multi-call binary dispatching on argv[0]
for t in ls read write rm list exists chmod watch; do ln -s xenstore "$R/usr/bin/xenstore-$t"; done
mkdir -p "$R"/etc/xen "$R"/var/lib/xen "$R"/var/lib/xenstored "$R"/var/log/xen/console
cp "$STAGE/etc/xen/xl.conf" "$R/etc/xen/"
cp -r "$STAGE/etc/xen/scripts" "$R/etc/xen/"
# libxl always passes "-vnc none" to the PV device model, which then insists on the
# default keymap ("could not read keymap file: 'en-us'" otherwise).
install -D -m644 "$STAGE/usr/share/qemu/keymaps/en-us" "$R/usr/share/qemu/keymaps/en-us"
# Kernel modules the toolstack needs (everything else it uses is built in).
for m in xen-evtchn xen-privcmd xenfs xen-gntdev xen-gntalloc; do
    cp "$(find "$STAGE/lib/modules/$KVER" -name "$m.ko*" | head -1)" "$R/lib/modules/"
done
# Guests get the ELF inside the bzImage: given the bzImage, libxc XZ-decompresses it in
# dom0 on every xl create, which costs seconds under TCG.
xz_at=$(LC_ALL=C grep -obUaP '\xFD7zXZ\x00' "$IMAGES/vmlinuz" | awk -F: 'NR == 1 { print $1 }')
tail -c +$((xz_at + 1)) "$IMAGES/vmlinuz" > "$E2E_CACHE/vmlinux.xz"
xz -dc --single-stream "$E2E_CACHE/vmlinux.xz" > "$R/boot/guest/vmlinux"
rm -f "$E2E_CACHE/vmlinux.xz"
[ "$(od -An -c -N4 "$R/boot/guest/vmlinux" | tr -d ' ')" = '177ELF' ] || die "no ELF kernel inside $IMAGES/vmlinuz"

(cd "$R" && find . -print0 | cpio --null -o -H newc --quiet) | zstd -q -T0 -6 > "$image.tmp"
mv "$image.tmp" "$image"
echo "$key" > "$image.key"
log "dom0 base image: $(du -h "$image" | cut -f1) ($(du -sh "$R" | cut -f1) unpacked), kernel $KVER"
rm -rf "$R"
