# SPDX-License-Identifier: MIT
# The real-Xen tiers: a real Xen, a Debian dom0 and PV guests under QEMU (no
# KVM needed), serving real hvc_xen channels with this tree's xenchan-proxy
# and xenchan-guest packages as installed.  One program (tests/xen/run), one
# Xen-version profile per tier.  See tests/xen/README.md.  Not part of
# `make check`.
#   make check-xen                                  Debian 12's Xen 4.17: two boots,
#                                                   the plain dom0, then libvirtd's
#   make check-xen-4.20                             Xen 4.20.4 from its own package
#   make check-xen XEN_TEST_ARGS='-s hotplug -v'    one scenario, with the serial log
#   make check-xen-libvirt                          only the boot with libvirtd
XEN_TEST_ARGS ?=
# Xen 4.20.4's package (Xen's `make debball`): the shared copy beside this
# repository when there is one, else where tests/xen/build-xen-deb writes it.
XEN_DEB_4_20 ?= $(firstword $(wildcard $(abspath $(CURDIR)/../shared/xen-4.20/xen-upstream-4.20.4.deb)) \
                  $(XEN_DEB_4_20_BUILT))

# `deb` always rebuilds both packages from the tree as it is (install.mk), so
# a stale package is never what a tier tests.
check-xen: deb
	$(PYTHON) tests/xen/run --xen 4.17 --debs $(DEB_DIR) $(XEN_TEST_ARGS)

# check-xen's second boot alone: libvirtd in dom0 (libvirt's PV guest with a
# unix and a pty channel under the xenchan-dm-default package, then the same
# under libvirtd's AppArmor profile); its image is 54 MiB larger
# (tests/xen/README.md).
check-xen-libvirt: deb
	$(PYTHON) tests/xen/run --xen 4.17 --debs $(DEB_DIR) -s libvirt,apparmor $(XEN_TEST_ARGS)

check-xen-4.20: deb $(XEN_DEB_4_20)
	$(PYTHON) tests/xen/run --xen 4.20 --xen-deb $(XEN_DEB_4_20) --debs $(DEB_DIR) $(XEN_TEST_ARGS)

# Xen 4.20.4's package from Xen's source tag, into tests/.cache/xen-4.20/
# (as root, on Debian 12: it installs the build dependencies; ~5 min on 2
# cores).  check-xen-4.20 builds it so when there is no other copy.
XEN_DEB_4_20_BUILT = $(CURDIR)/tests/.cache/xen-4.20/xen-upstream-4.20.4.deb
$(XEN_DEB_4_20_BUILT):
	tests/xen/build-xen-deb $(@D)
xen-deb-4.20:
	tests/xen/build-xen-deb $(dir $(XEN_DEB_4_20_BUILT))

.PHONY: check-xen check-xen-libvirt check-xen-4.20 xen-deb-4.20
