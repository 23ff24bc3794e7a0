/*
 * shm.c -- who may write a named shared-memory file of tiercache (the L2 segment, the host's
 * coherence segment): the trust rules of docs/SHARED.md, "Who may write the segment", in one
 * place for both. A file is used only when fstat() of the descriptor that will be mapped shows
 * a regular file owned by this effective uid, or by the trusted group (CACHE_SHARED_GROUP),
 * with no permission beyond CACHE_SHARED_MODE.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shm.h"
#include "util.h"

/* The segments this process trusts, from CACHE_SHARED_GROUP and CACHE_SHARED_MODE (already
 * validated as a pair by the configuration: 0600 alone, or 0660 with a group). A group is a
 * name or a numeric gid. 0, or TC_ECONFIG naming the setting. */
int tc__shm_trust_of(const tc__opts *opt, tc__shm_trust *t, char *errbuf, size_t errlen) {
    memset(t, 0, sizeof *t);
    t->mode = opt->shared_mode;
    if (t->mode != 0600 && t->mode != 0660)
        return tc__errf(errbuf, errlen, TC_ECONFIG,
                        "CACHE_SHARED_MODE=%04o: expected 0600 or 0660", opt->shared_mode);
    const char *g = opt->shared_group;
    if (g[0] == '\0') return 0;
    t->has_group = 1;
    snprintf(t->group, sizeof t->group, "%s", g);
    if (strspn(g, "0123456789") == strlen(g) && strlen(g) < 11) {
        unsigned long v = strtoul(g, NULL, 10);
        if (v < (unsigned long)(gid_t)-1) {
            t->gid = (gid_t)v;
            return 0;
        }
    }
    struct group gr, *res = NULL;
    char buf[4096];
    int e = getgrnam_r(g, &gr, buf, sizeof buf, &res);
    if (e != 0 || res == NULL)
        return tc__errf(errbuf, errlen, TC_ECONFIG,
                        "CACHE_SHARED_GROUP=\"%s\": no such group%s%s", g, e ? ": " : "",
                        e ? strerror(e) : "");
    t->gid = gr.gr_gid;
    return 0;
}

/* "name" of a uid or gid for messages, or "?" when it has none. */
static const char *user_name(uid_t uid, char *out, size_t n) {
    struct passwd pw, *r = NULL;
    char buf[1024];
    if (getpwuid_r(uid, &pw, buf, sizeof buf, &r) == 0 && r != NULL)
        snprintf(out, n, "%s", pw.pw_name);
    else
        snprintf(out, n, "?");
    return out;
}
static const char *group_name(gid_t gid, char *out, size_t n) {
    struct group gr, *r = NULL;
    char buf[1024];
    if (getgrgid_r(gid, &gr, buf, sizeof buf, &r) == 0 && r != NULL)
        snprintf(out, n, "%s", gr.gr_name);
    else
        snprintf(out, n, "?");
    return out;
}

/* Decides whether the file behind an opened descriptor may be used as a segment: a regular
 * file owned by this effective uid or by the trusted group, with no permission beyond
 * t->mode, and group permissions only for the trusted group (or, for the admin functions,
 * on the owner's own file). Works on fstat() of the descriptor, so the file judged is the file
 * that will be mapped. 0, or TC_EPERM with a message naming owner, group, mode and the fix. */
int tc__shm_trust_check(const struct stat *st, const tc__shm_trust *t, const char *name, const char *path,
                        char *errbuf, size_t errlen) {
    char un[64], gn[64];
    unsigned perm = (unsigned)(st->st_mode & 07777);
    uid_t me = geteuid();
    int group_ok = t->has_group && st->st_gid == t->gid;
    if (!S_ISREG(st->st_mode))
        return tc__errf(errbuf, errlen, TC_EPERM,
                        "shared segment '%s' is not a regular file (mode %06o): refused; remove it "
                        "with `tiercache shared destroy %s`",
                        name, (unsigned)st->st_mode, name);
    if (st->st_uid != me && !group_ok)
        return tc__errf(errbuf, errlen, TC_EPERM,
                        "shared segment '%s' belongs to uid %u (%s), group %u (%s), mode %04o, "
                        "but this process (uid %u) trusts only segments it owns%s%s: refused. If "
                        "it is not yours, another user may be squatting the name: remove it "
                        "(`tiercache shared destroy %s`, as its owner or root). To share a "
                        "segment between users, set CACHE_SHARED_GROUP and CACHE_SHARED_MODE=0660",
                        name, (unsigned)st->st_uid, user_name(st->st_uid, un, sizeof un),
                        (unsigned)st->st_gid, group_name(st->st_gid, gn, sizeof gn), perm,
                        (unsigned)me, t->has_group ? " or that belong to group " : "",
                        t->has_group ? t->group : "", name);
    if ((perm & ~t->mode) != 0)
        return tc__errf(errbuf, errlen, TC_EPERM,
                        "shared segment '%s' (uid %u (%s), group %u (%s)) has mode %04o, wider "
                        "than the %04o allowed (CACHE_SHARED_MODE): refused. Its owner can narrow "
                        "it (chmod %04o %s) or remove it (`tiercache shared "
                        "destroy %s`)",
                        name, (unsigned)st->st_uid, user_name(st->st_uid, un, sizeof un),
                        (unsigned)st->st_gid, group_name(st->st_gid, gn, sizeof gn), perm, t->mode,
                        perm & t->mode, path, name);
    if ((perm & 0070) != 0 && !group_ok && !(t->any_group && st->st_uid == me))
        return tc__errf(errbuf, errlen, TC_EPERM,
                        "shared segment '%s' (uid %u (%s), mode %04o) is open to group %u (%s), "
                        "which is not CACHE_SHARED_GROUP%s%s: refused. Its owner can give it to the "
                        "configured group (chgrp) or remove it (`tiercache shared destroy %s`)",
                        name, (unsigned)st->st_uid, user_name(st->st_uid, un, sizeof un), perm,
                        (unsigned)st->st_gid, group_name(st->st_gid, gn, sizeof gn),
                        t->has_group ? "=" : " (unset)", t->has_group ? t->group : "", name);
    return 0;
}

