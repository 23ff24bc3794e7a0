/*
 * prom_check.c -- test helper: runs tests/helpers/prom_check.py (the source tree's copy, found
 * through TC_SOURCE_DIR) with /usr/bin/python3 in isolated mode and an empty environment, the
 * exposition on its standard input, and parses the JSON it prints with jansson. See
 * prom_check.h.
 */
#include "helpers/prom_check.h"

#include <stdio.h>
#include <string.h>

#include "helpers/json_check.h"
#include "helpers/run_cmd.h"

#define PROM_CHECK_TIMEOUT_MS 60000

json_t *tc_test_prom_parse(const char *text, char *err, size_t errlen) {
    const char *argv[] = {"/usr/bin/python3", "-I", TC_SOURCE_DIR "/tests/helpers/prom_check.py", NULL};
    tc_test_run r;
    if (tc_test_run_cmd(argv, NULL, text, strlen(text), PROM_CHECK_TIMEOUT_MS, &r) != 0) {
        snprintf(err, errlen, "cannot run %s", argv[0]);
        return NULL;
    }
    json_t *doc = NULL;
    if (r.status != 0 || r.timed_out) {
        snprintf(err, errlen, "%s (exit %d%s)", r.err_len ? r.err : "prom_check.py failed", r.status,
                 r.timed_out ? ", timed out" : "");
    } else {
        char jerr[256];
        doc = tc_test_json_parse(r.out, r.out_len, 0, jerr, sizeof jerr);
        if (doc == NULL) snprintf(err, errlen, "prom_check.py printed %s", jerr);
        else if (!json_is_array(doc)) {
            snprintf(err, errlen, "prom_check.py printed no array");
            json_decref(doc);
            doc = NULL;
        }
    }
    tc_test_run_free(&r);
    return doc;
}
