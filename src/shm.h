/*
 * shm.h -- the trust rules of tiercache's named shared-memory files (shm.c), shared by the L2
 * segment (l2_segment.c) and the host's coherence segment (coherence.c).
 */
#ifndef TC_SHM_H
#define TC_SHM_H

#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "config.h"

/* Which segments a process trusts: docs/SHARED.md, "Who may write the segment". A segment is
 * used only when its file (checked with fstat on the opened descriptor) is owned by the
 * effective uid, or belongs to the trusted group; and its permission bits are within mode. */
typedef struct tc__shm_trust {
    unsigned mode;   /* the widest permission bits accepted, and those a new segment gets */
    int has_group;   /* 1: segments of group gid are trusted, and new ones are given to it */
    gid_t gid;
    int any_group;   /* admin functions: the owner's segment may carry any group's bits */
    char group[TC_STR_MAX]; /* CACHE_SHARED_GROUP as configured, for messages */
} tc__shm_trust;

/* The admin functions' trust: segments this effective uid owns, no permission for others. */
#define TC__SHM_TRUST_OWNER ((tc__shm_trust){.mode = 0660, .any_group = 1})

/* The files this process trusts, from CACHE_SHARED_GROUP and CACHE_SHARED_MODE. 0, or
 * TC_ECONFIG naming the setting. */
int tc__shm_trust_of(const tc__opts *opt, tc__shm_trust *t, char *errbuf, size_t errlen);

/* Whether the file behind an opened descriptor (st: its fstat) may be used: 0, or TC_EPERM with
 * a message naming owner, group, mode and the fix. name (the segment's name) and path (the
 * file's) are for messages. */
int tc__shm_trust_check(const struct stat *st, const tc__shm_trust *t, const char *name, const char *path,
                        char *errbuf, size_t errlen);

#endif /* TC_SHM_H */
