# cpack.cmake - the Debian package of sendq, built by CPack's DEB generator
# from the same install rules as `cmake --install` (scripts/deb runs it).
#
# Why CPack rather than a debian/ directory: the top level of the tree is
# fixed (no debian/), and CPack packs exactly what the install rules
# install, so the package and a `cmake --install` can never disagree on a
# file.  CPack writes the control file, md5sums and the file modes
# (root:root), runs dpkg-shlibdeps for the library dependencies and strips
# the binaries; what debhelper would otherwise add (gzipped man pages, the
# copyright and changelog files, the systemd and statoverride steps of the
# maintainer scripts) is in this folder: pre-build.cmake and the scripts.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME sendq)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "sendq")
set(CPACK_PACKAGE_CONTACT "sendq developers <sendq@example.org>")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${CPACK_PACKAGE_CONTACT}")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_SECTION mail)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "local mail relay to TLS smarthosts")
# The long description (CPack puts the summary above it).
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "sendq accepts mail from local programs (a sendmail-compatible command and
SMTP on loopback or a unix socket), keeps every accepted message safe on
disk, and relays it to one or more configured smarthosts over implicit TLS
or STARTTLS with verified certificates and SMTP AUTH.
.
It replaces a null-client Postfix or Exim, nullmailer, msmtp-mta and dma.")
# Library dependencies from dpkg-shlibdeps (libgnutls30, libevent ...;
# not libinih1 or zlib1g: inih and zlib are linked in statically, see
# SENDQ_STATIC_SMALL_LIBS in CMakeLists.txt); systemd for
# systemd-sysusers and systemd-tmpfiles in postinst.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# libcurl (GnuTLS) is dlopen()ed for OAuth relays and libsystemd under
# systemd (daemon/service.c): shlibdeps cannot see them.
set(CPACK_DEBIAN_PACKAGE_DEPENDS "systemd, libsystemd0, libcurl3t64-gnutls | libcurl3-gnutls")
# One MTA at a time, as Debian's MTAs declare it (postfix, exim4,
# nullmailer, dma, msmtp-mta: Provides, Conflicts and Replaces
# mail-transport-agent).
set(CPACK_DEBIAN_PACKAGE_PROVIDES "mail-transport-agent")
set(CPACK_DEBIAN_PACKAGE_CONFLICTS "mail-transport-agent")
set(CPACK_DEBIAN_PACKAGE_REPLACES "mail-transport-agent")
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(_deb ${CMAKE_CURRENT_LIST_DIR})
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${_deb}/conffiles ${_deb}/postinst ${_deb}/prerm ${_deb}/postrm)
set(CPACK_PRE_BUILD_SCRIPTS ${_deb}/pre-build.cmake)
set(SENDQ_DEB_DIR ${_deb})
# Read by pre-build.cmake (CPack passes the CPACK_* variables on).
set(CPACK_SENDQ_DEB_DIR ${_deb})
include(CPack)
