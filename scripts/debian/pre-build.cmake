# pre-build.cmake - run by CPack on the staged tree before it is packed:
# what debhelper's dh_installman, dh_installdocs, dh_installchangelogs and
# dh_fixperms would do.
set(root "${CPACK_TEMPORARY_INSTALL_DIRECTORY}")
if(NOT IS_DIRECTORY "${root}/usr")
  message(FATAL_ERROR "pre-build: no staged tree in ${root}")
endif()
# Man pages: gzip -9n (no name or time stamp: reproducible).
file(GLOB_RECURSE _mans "${root}/usr/share/man/*")
foreach(m ${_mans})
  if(NOT m MATCHES "\\.gz$")
    execute_process(COMMAND gzip -9nf "${m}" RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "pre-build: gzip ${m} failed")
    endif()
  endif()
endforeach()
# sendmail, mailq and newaliases are sendq (it looks at argv[0]): so is
# their manual page.
set(man "${root}/usr/share/man")
if(NOT EXISTS "${man}/man1/sendq.1.gz")
  message(FATAL_ERROR "pre-build: no sendq.1 in ${man}")
endif()
file(MAKE_DIRECTORY "${man}/man8")
file(CREATE_LINK sendq.1.gz "${man}/man1/mailq.1.gz" SYMBOLIC)
file(CREATE_LINK sendq.1.gz "${man}/man1/newaliases.1.gz" SYMBOLIC)
file(CREATE_LINK ../man1/sendq.1.gz "${man}/man8/sendmail.8.gz" SYMBOLIC)
# The drop helper is documented in sendq-maildrop(5) until it has a page
# of its own.
if(EXISTS "${root}/usr/sbin/sendq-drop" AND
    NOT EXISTS "${man}/man8/sendq-drop.8.gz")
  file(CREATE_LINK ../man5/sendq-maildrop.5.gz "${man}/man8/sendq-drop.8.gz"
    SYMBOLIC)
endif()
# The queue lister is documented in sendq(1) (mailq while sendqd is down).
if(EXISTS "${root}/usr/sbin/sendq-showq" AND
    NOT EXISTS "${man}/man8/sendq-showq.8.gz")
  file(CREATE_LINK ../man1/sendq.1.gz "${man}/man8/sendq-showq.8.gz"
    SYMBOLIC)
endif()
# lintian overrides, each with its reason (in the file).
file(MAKE_DIRECTORY "${root}/usr/share/lintian/overrides")
file(COPY "${CPACK_SENDQ_DEB_DIR}/lintian-overrides" DESTINATION
  "${root}/usr/share/lintian/overrides")
file(RENAME "${root}/usr/share/lintian/overrides/lintian-overrides"
  "${root}/usr/share/lintian/overrides/sendq")
# The copyright file and the Debian changelog.
set(doc "${root}/usr/share/doc/sendq")
file(MAKE_DIRECTORY "${doc}")
file(COPY "${CPACK_SENDQ_DEB_DIR}/copyright" DESTINATION "${doc}"
  FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
string(TIMESTAMP _date "%a, %d %b %Y %H:%M:%S +0000" UTC)
file(WRITE "${doc}/changelog.Debian" "sendq (${CPACK_PACKAGE_VERSION}-${CPACK_DEBIAN_PACKAGE_RELEASE}) unstable; urgency=medium

  * Built from the sendq tree with CPack (scripts/deb).

 -- ${CPACK_DEBIAN_PACKAGE_MAINTAINER}  ${_date}
")
execute_process(COMMAND gzip -9nf "${doc}/changelog.Debian"
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "pre-build: gzip changelog failed")
endif()
# The drop helper (when the tree has one) is packed 0755 root:root; the
# postinst gives it its group and the setgid bit through dpkg-statoverride
# (the group sendq-drop only exists once systemd-sysusers has run).
# The queue lister sendq-showq likewise (root:sendq-queue 2755).
foreach(helper sendq-drop sendq-showq)
  if(EXISTS "${root}/usr/sbin/${helper}")
    file(CHMOD "${root}/usr/sbin/${helper}" PERMISSIONS OWNER_READ
      OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ
      WORLD_EXECUTE)
  endif()
endforeach()
# Directories 0755, files 0644 or 0755 whatever the builder's umask.
execute_process(COMMAND find "${root}" -type d -exec chmod 0755 {} +)
execute_process(COMMAND find "${root}" -type f ! -perm /111
  -exec chmod 0644 {} +)
