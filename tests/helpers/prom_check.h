/*
 * prom_check.h -- test helper: validate a Prometheus text exposition and read it with the
 * prometheus_client package's parser (Debian python3-prometheus-client), run as a child
 * process through tests/helpers/prom_check.py. The tests carry no Prometheus parser of their
 * own; what the script checks beyond that parser is listed at its top.
 */
#ifndef TC_TEST_PROM_CHECK_H
#define TC_TEST_PROM_CHECK_H

#include <stddef.h>

#include <jansson.h>

/* Checks text (NUL-terminated) and returns its families as a jansson array (new reference,
 * json_decref it):
 *   [{"name": family as in its TYPE line, "type": "counter"|"gauge"|"summary"|...,
 *     "help": "...", "samples": [{"name": "...", "labels": {"l": "decoded value"},
 *                                "value": "repr of the float: 1.0, nan, 4.21e-05"}]}]
 * Label values come decoded (escapes undone). Returns NULL with the checker's message (the
 * line and what is wrong) in err when the text breaks the format or the script cannot run.
 * Costs one python3 process (about 0.1 s). */
json_t *tc_test_prom_parse(const char *text, char *err, size_t errlen);

#endif /* TC_TEST_PROM_CHECK_H */
