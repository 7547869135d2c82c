# SPDX-License-Identifier: MIT
# libFuzzer harnesses (tests/fuzz/README.md).  Included by the top Makefile.
#
#   make fuzz                  every harness for FUZZ_SECONDS each (-j4: at once)
#   make fuzz-run-ring         one harness (ring, held, parse, store)
#   make fuzz-smoke            every harness over its seed corpus only (seconds)
#
# New corpus entries and crash inputs go to FUZZ_WORK, never into the tree;
# the seed corpus in tests/fuzz/corpus/ is only read.  FUZZ_SRC fuzzes the
# proxy sources of another directory (a candidate fix) with the same
# harnesses; give it its own FUZZ_B.
FUZZ_CC      ?= $(shell command -v clang-14 || command -v clang || echo clang)
FUZZ_SECONDS ?= 60
FUZZ_SRC     ?= .
FUZZ_B       ?= build/fuzz
FUZZ_WORK    ?= $(FUZZ_B)/work
FUZZ_OPTS    ?=
FUZZ_HARNESSES = ring held parse store

# The proxy's files get libFuzzer's coverage and comparison tracing; the
# harnesses only the sanitizers, so cov: and ft: count the proxy's code and
# the fuzzer's time goes to it, not to the harnesses' own loops.
FUZZ_WARN   = -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE
FUZZ_SAN    = -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS = $(FUZZ_WARN) -O1 -g -fno-omit-frame-pointer $(FUZZ_SAN) \
	-I$(FUZZ_SRC) -Itests/fuzz $(shell $(or $(PKG_CONFIG),pkg-config) --cflags xenstore 2>/dev/null)
FUZZ_STORE_LIBS := $(shell $(or $(PKG_CONFIG),pkg-config) --libs xenstore 2>/dev/null)
FUZZ_BINS = $(FUZZ_HARNESSES:%=$(FUZZ_B)/fuzz-%)

# Each harness and the proxy's objects it drives (built from FUZZ_SRC with
# coverage).  fuzz-parse calls only the pure parsers (libxenstore is there
# for store.c's and strict.c's other calls); fuzz-store.c is the xenstore,
# so fuzz-store links no libxenstore.
FUZZ_OBJS_ring  = $(FUZZ_B)/fuzz-ring.o $(FUZZ_B)/proxy/ring.o
FUZZ_OBJS_held  = $(FUZZ_B)/fuzz-held.o $(FUZZ_B)/proxy/held.o
FUZZ_OBJS_parse = $(FUZZ_B)/fuzz-parse.o $(FUZZ_B)/proxy/store.o $(FUZZ_B)/proxy/strict.o
FUZZ_OBJS_store = $(FUZZ_B)/fuzz-store.o $(FUZZ_B)/proxy/store.o $(FUZZ_B)/proxy/hotplug.o \
                  $(FUZZ_B)/proxy/strict.o
FUZZ_LIBS_parse = $(FUZZ_STORE_LIBS)

$(FUZZ_B)/proxy/%.o: $(FUZZ_SRC)/%.c $(FUZZ_B)/proxy/%.d
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(DEPFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<
	@touch $@

$(FUZZ_B)/%.o: tests/fuzz/%.c $(FUZZ_B)/%.d
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(DEPFLAGS) -c -o $@ $<
	@touch $@

define FUZZ_LINK
$(FUZZ_B)/fuzz-$(1): $(FUZZ_OBJS_$(1))
	$$(FUZZ_CC) $$(FUZZ_SAN) -fsanitize=fuzzer -o $$@ $$^ $$(FUZZ_LIBS_$(1))
endef
$(foreach h,$(FUZZ_HARNESSES),$(eval $(call FUZZ_LINK,$(h))))

# The header dependencies the compiler wrote; an object without its .d
# (built before there were any) is built again.  (clang writes the .d after
# the object: the rules touch the object last.)
FUZZ_DEPFILES = $(sort $(foreach h,$(FUZZ_HARNESSES),$(FUZZ_OBJS_$(h):.o=.d)))
$(FUZZ_DEPFILES):
-include $(wildcard $(FUZZ_DEPFILES))

# libFuzzer dictionaries: the numbers at the parsers' bounds, xenstore's words.
FUZZ_DICT_parse = tests/fuzz/numbers.dict
FUZZ_DICT_store = tests/fuzz/numbers.dict tests/fuzz/store.dict

fuzz: $(FUZZ_HARNESSES:%=fuzz-run-%)

# Not .PHONY: make skips pattern rules for phony targets.
fuzz-run-%: $(FUZZ_B)/fuzz-%
	@mkdir -p $(FUZZ_WORK)/corpus/$* $(FUZZ_WORK)/artifacts
	@$(if $(FUZZ_DICT_$*),cat $(FUZZ_DICT_$*) >$(FUZZ_WORK)/$*.dict,true)
	@echo "fuzz-$*: $(FUZZ_SECONDS) s, new inputs in $(FUZZ_WORK)/corpus/$*, log in $(FUZZ_WORK)/$*.log"
	@$< -max_total_time=$(FUZZ_SECONDS) -timeout=10 -print_final_stats=1 \
	  -artifact_prefix=$(FUZZ_WORK)/artifacts/$*- $(if $(FUZZ_DICT_$*),-dict=$(FUZZ_WORK)/$*.dict) $(FUZZ_OPTS) \
	  $(FUZZ_WORK)/corpus/$* tests/fuzz/corpus/$* >$(FUZZ_WORK)/$*.log 2>&1; \
	  s=$$?; grep -E '^#[0-9]+.*DONE|^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' \
	    $(FUZZ_WORK)/$*.log | sed 's/^/fuzz-$*: /'; \
	  if [ $$s != 0 ]; then tail -n 60 $(FUZZ_WORK)/$*.log; \
	    echo "fuzz-$*: FAILED; the input is in $(FUZZ_WORK)/artifacts/"; exit $$s; fi

# Each seed once, no fuzzing: the regression inputs of past crashes included.
fuzz-smoke: $(FUZZ_BINS)
	@mkdir -p $(FUZZ_WORK)/artifacts
	@failed=; for h in $(FUZZ_HARNESSES); do \
	  if $(FUZZ_B)/fuzz-$$h -artifact_prefix=$(FUZZ_WORK)/artifacts/smoke-$$h- \
	      tests/fuzz/corpus/$$h/* >$(FUZZ_WORK)/smoke-$$h.log 2>&1; then \
	    echo "fuzz-smoke: fuzz-$$h: $$(ls tests/fuzz/corpus/$$h | wc -l) seeds pass"; \
	  else \
	    grep -E '^Running:|invariant failed|reference|outside the channel|^removed|runtime error|ERROR: AddressSanitizer|^SUMMARY' \
	      $(FUZZ_WORK)/smoke-$$h.log | tail -n 5; \
	    echo "fuzz-smoke: fuzz-$$h FAILED (log: $(FUZZ_WORK)/smoke-$$h.log)"; failed="$$failed $$h"; \
	  fi; \
	done; [ -z "$$failed" ]

.PHONY: fuzz fuzz-smoke
