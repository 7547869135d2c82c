# SPDX-License-Identifier: MIT
# Installation and the Debian package; included by the top Makefile (after
# the programs' own makefiles).
#
#   make install [PREFIX=/usr/local] [DESTDIR=] [BINDIR=] [MANDIR=]
#                [SYSTEMDUNITDIR=] [GUESTDIR=]
#   make uninstall                    (the same variables)
#   make install-guest [UDEVDIR=]     in a guest, without the package
#   make deb                          both .debs into build-deb/ (see below)
#
# What `make install` lays out (README.md, "Installing", lists the same; and
# tests/test_install.py checks that it is exactly this):
#   $(BINDIR)/xenchan-proxy                       BINDIR  = $(PREFIX)/bin
#   $(BINDIR)/xenchan-dm                          (beside the proxy, which it runs)
#   $(BINDIR)/xenchan-devd                        (the same)
#   $(MANDIR)/man1/xenchan-proxy.1                MANDIR  = $(PREFIX)/share/man
#   $(MANDIR)/man8/xenchan-dm.8
#   $(MANDIR)/man8/xenchan-devd.8
#   $(SYSTEMDUNITDIR)/xenchan-proxy@.service      generated: ExecStart= names $(BINDIR)
#   $(SYSTEMDUNITDIR)/xenchan-proxy@.socket
#   $(SYSTEMDUNITDIR)/xenchan-devd.service        generated, the same
#   $(GUESTDIR)/70-xen-channel.rules              GUESTDIR = $(PREFIX)/share/xenchan-proxy/guest
#   $(GUESTDIR)/xen-channel-name
# SYSTEMDUNITDIR is systemd's own (pkg-config --variable=systemdsystemunitdir
# systemd: /lib/systemd/system on Debian 12), except that it is
# $(PREFIX)/lib/systemd/system when systemd reads that directory too
# (PREFIX=/usr/local: a local install stays out of the package manager's
# directory, where installing or removing the package would silently replace
# or delete it) or when there is no systemd.pc.  For a prefix systemd does
# not read (/opt/...) without systemd.pc, set SYSTEMDUNITDIR=/etc/systemd/system.
# The guest files under GUESTDIR are for copying into guests; `make
# install-guest` (in a guest) or the xenchan-guest package puts them where
# udev runs them.

PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
DATADIR ?= $(PREFIX)/share
MANDIR  ?= $(DATADIR)/man
GUESTDIR ?= $(DATADIR)/xenchan-proxy/guest
ifeq ($(origin SYSTEMDUNITDIR),undefined)
  SYSTEMD_PC_UNITDIR  := $(shell $(PKG_CONFIG) --variable=systemdsystemunitdir systemd 2>/dev/null)
  SYSTEMD_PC_UNITPATH := $(shell $(PKG_CONFIG) --variable=systemdsystemunitpath systemd 2>/dev/null)
  ifeq ($(SYSTEMD_PC_UNITDIR),)
    SYSTEMDUNITDIR := $(PREFIX)/lib/systemd/system
  else ifneq ($(and $(filter-out /usr,$(PREFIX:%/=%)),$(filter $(PREFIX:%/=%)/lib/systemd/system,$(subst :, ,$(SYSTEMD_PC_UNITPATH)))),)
    SYSTEMDUNITDIR := $(PREFIX:%/=%)/lib/systemd/system
  else
    SYSTEMDUNITDIR := $(SYSTEMD_PC_UNITDIR)
  endif
endif
# udev runs a relative RUN+= program from its own directory (/lib/udev on
# Debian 12, /usr/lib/udev on newer systems), which is where the rule expects
# xen-channel-name; only install-guest uses this.
ifeq ($(origin UDEVDIR),undefined)
  UDEVDIR := $(shell $(PKG_CONFIG) --variable=udevdir udev 2>/dev/null)
  ifeq ($(UDEVDIR),)
    UDEVDIR := /usr/lib/udev
  endif
endif
INSTALL ?= install

# The device-model stand-in, when the top Makefile builds it (its object
# list is set); tests/test_install.py asks for DM_PROG (make print-DM_PROG).
DM_PROG   = $(if $(DM_OBJS),xenchan-dm)
DM_MAN   := $(wildcard man/xenchan-dm.8)
UNITS     = xenchan-proxy@.service xenchan-proxy@.socket xenchan-devd.service
GUEST_FILES = 70-xen-channel.rules xen-channel-name

# What install needs built: the programs only (not the simulator).
programs: xenchan-proxy $(DM_PROG) xenchan-devd xenchan-dm-dispatch

install: programs
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 \
	  $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(GUESTDIR)
	$(INSTALL) -m 0755 xenchan-proxy $(DESTDIR)$(BINDIR)/xenchan-proxy
	$(INSTALL) -m 0644 man/xenchan-proxy.1 $(DESTDIR)$(MANDIR)/man1/xenchan-proxy.1
ifneq ($(DM_PROG),)
	@# In BINDIR although its manual is in section 8: xenchan-dm runs the
	@# xenchan-proxy beside its own executable (dm.mk's DM_PROXY_PATH empty).
	$(INSTALL) -m 0755 xenchan-dm $(DESTDIR)$(BINDIR)/xenchan-dm
endif
	@# The driver domain's watcher, which runs the proxy beside it too.
	$(INSTALL) -m 0755 xenchan-devd $(DESTDIR)$(BINDIR)/xenchan-devd
	$(INSTALL) -d $(DESTDIR)$(MANDIR)/man8
ifneq ($(DM_MAN),)
	$(INSTALL) -m 0644 man/xenchan-dm.8 $(DESTDIR)$(MANDIR)/man8/xenchan-dm.8
endif
	$(INSTALL) -m 0644 man/xenchan-devd.8 $(DESTDIR)$(MANDIR)/man8/xenchan-devd.8
	@# The units name /usr/bin/xenchan-proxy and xenchan-devd, where packages
	@# put them; point them at this BINDIR (a temporary file, so a failed sed
	@# leaves no unit).
	set -e; for u in $(UNITS); do \
	  sed -e 's|/usr/bin/xenchan-proxy|$(BINDIR)/xenchan-proxy|g' \
	    -e 's|/usr/bin/xenchan-devd|$(BINDIR)/xenchan-devd|g' contrib/systemd/$$u \
	    >$(DESTDIR)$(SYSTEMDUNITDIR)/.$$u.tmp; \
	  chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/.$$u.tmp; \
	  mv -f $(DESTDIR)$(SYSTEMDUNITDIR)/.$$u.tmp $(DESTDIR)$(SYSTEMDUNITDIR)/$$u; \
	done
	$(INSTALL) -m 0644 contrib/guest/70-xen-channel.rules $(DESTDIR)$(GUESTDIR)/70-xen-channel.rules
	$(INSTALL) -m 0755 contrib/guest/xen-channel-name $(DESTDIR)$(GUESTDIR)/xen-channel-name
	@if [ -z "$(DESTDIR)" ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then \
	  echo "install: run 'systemctl daemon-reload' to load the units"; fi

# Removes what install put there (dm files whether or not they exist in this
# tree: an older install may have them), and the share directories if empty.
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/xenchan-proxy $(DESTDIR)$(BINDIR)/xenchan-dm \
	  $(DESTDIR)$(BINDIR)/xenchan-devd $(DESTDIR)$(MANDIR)/man8/xenchan-devd.8 \
	  $(DESTDIR)$(MANDIR)/man1/xenchan-proxy.1 $(DESTDIR)$(MANDIR)/man8/xenchan-dm.8 \
	  $(UNITS:%=$(DESTDIR)$(SYSTEMDUNITDIR)/%) $(GUEST_FILES:%=$(DESTDIR)$(GUESTDIR)/%)
	rmdir $(DESTDIR)$(GUESTDIR) $(DESTDIR)$(DATADIR)/xenchan-proxy 2>/dev/null || :

# In a guest: the udev rule and the naming script where udev runs them.
install-guest:
	$(INSTALL) -d $(DESTDIR)$(UDEVDIR)/rules.d
	$(INSTALL) -m 0644 contrib/guest/70-xen-channel.rules $(DESTDIR)$(UDEVDIR)/rules.d/70-xen-channel.rules
	$(INSTALL) -m 0755 contrib/guest/xen-channel-name $(DESTDIR)$(UDEVDIR)/xen-channel-name

uninstall-guest:
	rm -f $(DESTDIR)$(UDEVDIR)/rules.d/70-xen-channel.rules $(DESTDIR)$(UDEVDIR)/xen-channel-name

# ---- the dispatcher at libxl's default device-model path --------------------------
# xenchan-dm-dispatch decides, for each device model libxl starts at its
# compiled-in default path (/usr/libexec/xen-qemu-system-i386 on Debian,
# qemu-system-xen's file), whether xenchan-dm or QEMU serves the domain, and
# executes that one (man/xenchan-dm.8, THE DISPATCHER).  It only works with
# QEMU moved to DISPATCH_PATH.distrib, which the xenchan-dm-default package's
# dpkg-divert does; `make install` never installs it.
#   make install-dispatch [DESTDIR=] [DISPATCH_PATH=]
# puts it at DISPATCH_PATH; without DESTDIR only where dpkg already diverts
# that path (dpkg-divert --local --rename --divert PATH.distrib --add PATH,
# as root, first), so that it can never overwrite QEMU.
DISPATCH_PATH ?= /usr/libexec/xen-qemu-system-i386

install-dispatch: xenchan-dm-dispatch
	@if [ -z "$(DESTDIR)" ] && [ -z "$$(dpkg-divert --listpackage $(DISPATCH_PATH) 2>/dev/null)" ]; then \
	  echo "install-dispatch: $(DISPATCH_PATH) is not diverted: it would replace QEMU there." >&2; \
	  echo "  Install the xenchan-dm-default package, or divert it first:" >&2; \
	  echo "  dpkg-divert --local --rename --divert $(DISPATCH_PATH).distrib --add $(DISPATCH_PATH)" >&2; \
	  exit 1; fi
	$(INSTALL) -d $(DESTDIR)$(dir $(DISPATCH_PATH))
	$(INSTALL) -m 0755 xenchan-dm-dispatch $(DESTDIR)$(DISPATCH_PATH)

uninstall-dispatch:
	rm -f $(DESTDIR)$(DISPATCH_PATH)

# ---- Debian package ------------------------------------------------------------
# make deb: dpkg-buildpackage -us -uc -b on a copy of the tree (the files git
# tracks or would track, as they are now, edits included), so the tree gets
# no debian/ build files; the .debs, .changes and .buildinfo land in
# $(DEB_OUT), which ignores itself (a .gitignore of "*").  The copy is removed
# after a successful build and kept after a failed one, to look at.
#   make deb-lintian   the same, then lintian on the result (no error, no warning)
DEB_OUT    ?= build-deb
DEB_DIR     = $(abspath $(DEB_OUT))
DEB_ARCH    = $(shell dpkg-architecture -qDEB_HOST_ARCH 2>/dev/null)
DEB_CHANGES = $(DEB_DIR)/xenchan-proxy_$(VERSION)_$(DEB_ARCH).changes
DEB_SRC     = $(DEB_DIR)/xenchan-proxy-$(VERSION)
DEB_BUILD_ARGS ?= -us -uc -b

deb:
	@command -v dpkg-buildpackage >/dev/null || \
	  { echo "deb: dpkg-buildpackage missing (apt-get install dpkg-dev debhelper fakeroot)" >&2; exit 1; }
	@v=$$(dpkg-parsechangelog -l debian/changelog -S Version) && [ "$$v" = "$(VERSION)" ] || \
	  { echo "deb: debian/changelog is at $$v but the Makefile's VERSION is $(VERSION):" \
	    "add a changelog entry (dch -v $(VERSION))" >&2; exit 1; }
	rm -rf $(DEB_SRC) $(DEB_DIR)/build.log $(DEB_DIR)/xenchan-proxy_* $(DEB_DIR)/xenchan-proxy-dbgsym_* \
	  $(DEB_DIR)/xenchan-guest_* $(DEB_DIR)/xenchan-dm-default_* $(DEB_DIR)/xenchan-dm-default-dbgsym_*
	mkdir -p $(DEB_SRC)
	echo '*' >$(DEB_DIR)/.gitignore
	@# git's view of the tree when there is one (tracked and untracked, not
	@# ignored, not deleted; never a built program, ignored or not);
	@# otherwise everything but build output.
	set -e; if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
	  git ls-files -z --cached --others --exclude-standard | \
	    xargs -0 sh -c 'for f; do case $$f in xenchan-proxy|xenchan-dm|xenchan-devd|xenchan-dm-dispatch) continue;; esac; \
	      [ -e "$$f" ] && printf "%s\0" "$$f"; done; :' sh | \
	    tar --null --no-recursion -T - -cf - | tar -xf - -C $(DEB_SRC); \
	else \
	  tar --exclude=./build --exclude=./build-asan --exclude=./$(DEB_OUT) --exclude=./tests/.cache \
	    --exclude=./xenchan-proxy --exclude=./xenchan-dm --exclude=./xenchan-devd --exclude=./xenchan-dm-dispatch --exclude=./.git \
	    --exclude=./debian/tmp --exclude=./debian/.debhelper -cf - . | tar -xf - -C $(DEB_SRC); \
	fi
	cd $(DEB_SRC) && dpkg-buildpackage $(DEB_BUILD_ARGS) >$(DEB_DIR)/build.log 2>&1 || \
	  { tail -n 40 $(DEB_DIR)/build.log >&2; \
	    echo "deb: dpkg-buildpackage failed: see $(DEB_DIR)/build.log; the tree is in $(DEB_SRC)" >&2; exit 1; }
	rm -rf $(DEB_SRC)
	@ls -1 $(DEB_DIR)/*_$(VERSION)_*.deb $(DEB_CHANGES)

deb-lintian: deb
	lintian --fail-on error,warning --display-info $(DEB_CHANGES)

.PHONY: programs install uninstall install-guest uninstall-guest install-dispatch uninstall-dispatch \
  deb deb-lintian
