# The real-Xen tier: Debian 12's Xen 4.17, a Debian dom0 and PV guests under
# QEMU (no KVM needed), serving real hvc_xen channels with this tree's
# xenchan-proxy.  See tests/xen/README.md.  Not part of `make check`.
#   make check-xen                                  every default scenario
#   make check-xen XEN_TEST_ARGS='-s hotplug -v'    one, with the serial log
XEN_TEST_ARGS ?=

check-xen: xenchan-proxy
	$(PYTHON) tests/xen/run $(XEN_TEST_ARGS)

.PHONY: check-xen
