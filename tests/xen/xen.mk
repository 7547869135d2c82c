# The real-Xen tier: Debian 12's Xen 4.17, a Debian dom0 and PV guests under
# QEMU (no KVM needed), serving real hvc_xen channels with this tree's
# xenchan-proxy and xenchan-guest packages as installed.  See
# tests/xen/README.md.  Not part of `make check`.
#   make check-xen                                  every default scenario
#   make check-xen XEN_TEST_ARGS='-s hotplug -v'    one, with the serial log
XEN_TEST_ARGS ?=

# `deb` always rebuilds both packages from the tree as it is (install.mk), so
# a stale package is never what the tier tests.
check-xen: deb
	$(PYTHON) tests/xen/run --debs $(DEB_DIR) $(XEN_TEST_ARGS)

.PHONY: check-xen
