/*
 * config.h -- internal side of configuration: validation of an options struct, whether it
 * came from the environment or was filled by hand.
 */
#ifndef TC_CONFIG_H
#define TC_CONFIG_H

#include <stddef.h>

#include "tiercache.h"

/* Checks every field of opt for sense (tiering non-empty with no tier twice, limits in range,
 * port 1..65535, ...). Returns 0, or TC_ECONFIG with a message naming the field's environment
 * variable and what is accepted in errbuf. */
int tc__options_validate(const tc_options *opt, char *errbuf, size_t errlen);

#endif /* TC_CONFIG_H */
