# modclosure.awk: the load order of kernel modules and everything they depend on.
#
#   awk -f modclosure.awk -v want="virtio_net nfsv4 ..." MODULES.BUILTIN MODULES.DEP
#
# Prints the modules.dep paths (relative to /lib/modules/<version>) of the wanted modules and
# their dependencies, each once, every module after all of its dependencies: the order for
# insmod. Names match as the kernel matches them ("-" and "_" alike). A wanted module that is
# built into the kernel (listed in MODULES.BUILTIN) is skipped; one that is neither is an error.
# Used by `scripts/efs-vm setup`.

function modname(path,    b) {
    b = path
    sub(/.*\//, "", b)
    sub(/\.ko(\.[a-z]+)?$/, "", b)
    gsub(/-/, "_", b)
    return b
}

FILENAME == ARGV[1] {
    builtin[modname($1)] = 1
    next
}

{
    path = $1
    sub(/:$/, "", path)
    pathof[modname(path)] = path
    deps[path] = ""
    for (i = 2; i <= NF; i++) deps[path] = deps[path] " " $i
}

function visit(path,    d, n, i) {
    if (state[path] == 2) return
    if (state[path] == 1) {
        print "modclosure: dependency cycle through " path > "/dev/stderr"
        failed = 1
        return
    }
    if (!(path in deps)) {
        print "modclosure: " path " is a dependency but has no modules.dep entry" > "/dev/stderr"
        failed = 1
        return
    }
    state[path] = 1
    n = split(deps[path], d, " ")
    for (i = 1; i <= n; i++) visit(d[i])
    state[path] = 2
    print path
}

END {
    n = split(want, w, " ")
    for (i = 1; i <= n; i++) {
        name = w[i]
        gsub(/-/, "_", name)
        if (name in pathof) visit(pathof[name])
        else if (!(name in builtin)) {
            print "modclosure: no module " w[i] > "/dev/stderr"
            failed = 1
        }
    }
    exit failed
}
