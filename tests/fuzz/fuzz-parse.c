/* SPDX-License-Identifier: MIT */
/*
 * fuzz-parse.c - the strict number parsers (strict.c) and the channel pick
 * of xs.c against brute-force references.
 *
 * The first byte chooses:
 *   even: strict_uint(string, max) for an arbitrary string and a max that
 *         is either one the proxy uses or any 64-bit value.  Reference: only
 *         digits, at least one, strtoull without ERANGE, value <= max.
 *         strict_canonical the same, refusing a leading zero too.
 *   odd:  store_pick_channel(devids, names, n, want) over a directory listing
 *         split from the input (NUL-separated: want, then devid/name pairs;
 *         a name token "=NAME" is NAME, anything else is no "name" node).
 *         Reference: want a number (as strict_uint reads devids, up to
 *         65535) -> the first devid of that number, 0 is STORE_INVALID;
 *         otherwise the one entry with a non-zero numeric devid whose name
 *         is want, STORE_AMBIGUOUS if several, STORE_NOT_FOUND if none.
 * Every string and both arrays are exact allocations, so ASan sees a read
 * past a terminator or past n.
 */
#include <limits.h>
#include "fuzz-input.h"
#include "fuzz-ref.h"
#include "strict.h"

#define MAX_ENTRIES 64

static const unsigned long maxima[] = {
	0, 1, 8 /* XB_RECONFIGURED */, 9, 10, 99, 0x7fef, REF_DEVID_MAX, INT32_MAX,
	UINT32_MAX, 1UL << 30, ULONG_MAX, ULONG_MAX - 1, ULONG_MAX / 10,
};

static void fuzz_parse_uint(struct fin *f, uint8_t sel)
{
	unsigned long max, got = 12345, want = 54321;
	size_t nmax = sizeof(maxima) / sizeof(maxima[0]);
	unsigned idx = sel >> 1;
	char *s;
	bool r, ref;

	max = idx < nmax ? maxima[idx] : fin_u64(f);
	s = fin_str(f, 128);
	r = strict_uint(s, max, &got);
	ref = ref_parse_uint(s, max, &want);
	if (r != ref || (r && got != want)) {
		fprintf(stderr, "strict_uint(\"%s\", %lu) = %d (%lu), reference %d (%lu)\n",
			s, max, r, got, ref, want);
		abort();
	}
	if (r)
		FUZZ_CHECK(got <= max);
	/* The canonical spelling: the same, minus a leading zero. */
	ref = ref && (s[0] != '0' || s[1] == '\0');
	r = strict_canonical(s, max, &got);
	if (r != ref || (r && got != want)) {
		fprintf(stderr, "strict_canonical(\"%s\", %lu) = %d (%lu), reference %d (%lu)\n",
			s, max, r, got, ref, want);
		abort();
	}
	free(s);
	FUZZ_CHECK(!strict_uint(NULL, max, &got));
	FUZZ_CHECK(!strict_canonical(NULL, max, &got));
}

static void fuzz_pick_channel(struct fin *f)
{
	char *want = fin_str(f, 200);
	char *tmp_devids[MAX_ENTRIES], *tmp_names[MAX_ENTRIES];
	char **devids, **names;
	size_t n = 0, idx = SIZE_MAX, ref_idx = SIZE_MAX;
	enum store_result r, ref;

	while (n < MAX_ENTRIES && !fin_empty(f)) {
		char *name;
		tmp_devids[n] = fin_str(f, 24);
		name = fin_str(f, 200);
		if (name[0] == '=') {
			tmp_names[n] = strdup(name + 1);
			FUZZ_CHECK(tmp_names[n] != NULL);
		} else {
			tmp_names[n] = NULL;
		}
		free(name);
		n++;
	}
	devids = malloc((n ? n : 1) * sizeof(*devids));
	names = malloc((n ? n : 1) * sizeof(*names));
	FUZZ_CHECK(devids != NULL && names != NULL);
	memcpy(devids, tmp_devids, n * sizeof(*devids));
	memcpy(names, tmp_names, n * sizeof(*names));

	r = store_pick_channel((const char *const *)devids, (const char *const *)names,
			    n, want, &idx);
	ref = ref_pick_channel(devids, names, n, want, &ref_idx);
	if (r != ref || (r == STORE_OK && idx != ref_idx)) {
		fprintf(stderr, "store_pick_channel(want \"%s\", %zu entries) = %d [%zu], "
			"reference %d [%zu]\n", want, n, r, idx, ref, ref_idx);
		abort();
	}
	for (size_t i = 0; i < n; i++) {
		free(devids[i]);
		free(names[i]);
	}
	free(devids);
	free(names);
	free(want);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fin f = { data, size };
	uint8_t sel = fin_u8(&f);

	if (sel & 1)
		fuzz_pick_channel(&f);
	else
		fuzz_parse_uint(&f, sel);
	return 0;
}
