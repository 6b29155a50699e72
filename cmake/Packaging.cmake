# The Debian package of the service (issue #6), built with CPack:
#
#   cmake --build build && (cd build && cpack -G DEB)   ->  build/replica-autoscaler_<version>_<arch>.deb
#
# What goes in it besides the binary (which autoscaler/CMakeLists.txt installs to bin/):
#   /lib/systemd/system/replica-autoscaler.service   hardened unit, not enabled by the package
#   /etc/replica-autoscaler/config.yaml.example      the commented example configuration
#   /usr/share/doc/replica-autoscaler/               README and the operator guides
# The maintainer scripts in packaging/debian/ create the system user and the state directory.
# Runtime dependencies come from dpkg-shlibdeps on the binary, plus adduser for postinst.

set(ra_pkg_dir ${PROJECT_SOURCE_DIR}/packaging)

# Absolute destinations on purpose: a Debian package puts units and configuration at fixed
# system paths whatever the install prefix (/usr for the package, /usr/local for `cmake --install`).
install(FILES ${ra_pkg_dir}/systemd/replica-autoscaler.service DESTINATION /lib/systemd/system)
# OPTIONAL: these files are written by other issues; the deploy test (tests/deploy) fails when
# the package lacks them, rather than the whole build failing while they are being written.
install(FILES ${PROJECT_SOURCE_DIR}/examples/replica-autoscaler.yaml DESTINATION /etc/replica-autoscaler
        RENAME config.yaml.example OPTIONAL)
install(FILES ${PROJECT_SOURCE_DIR}/docs/deployment.md ${PROJECT_SOURCE_DIR}/docs/metrics.md
              ${ra_pkg_dir}/debian/copyright
        DESTINATION share/doc/replica-autoscaler)
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/docs/configuration.md
        DESTINATION share/doc/replica-autoscaler OPTIONAL)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME replica-autoscaler)
set(CPACK_PACKAGE_VENDOR "replica-autoscaler")
set(CPACK_PACKAGE_CONTACT "replica-autoscaler maintainers <maintainers@replica-autoscaler.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "elastic PostgreSQL read replicas on OpenStack")
set(CPACK_PACKAGE_DESCRIPTION
    "replica-autoscaler builds PostgreSQL read replicas from Cinder volume snapshots when read\n\
load rises, admits them to HAProxy through the Data Plane API once they have caught up on WAL,\n\
and drains and deletes them when load falls. Policies read Prometheus or VictoriaMetrics.")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_STRIP_FILES TRUE)
# Only what install() rules name; the test binaries are never installed.
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION database)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://replica-autoscaler.invalid/")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${ra_pkg_dir}/debian/postinst ${ra_pkg_dir}/debian/prerm
                                      ${ra_pkg_dir}/debian/postrm)
# dpkg refuses a conffiles entry for a file the package lacks; re-configure when examples/ changes.
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/examples)
if(EXISTS ${PROJECT_SOURCE_DIR}/examples/replica-autoscaler.yaml)
  list(APPEND CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${ra_pkg_dir}/debian/conffiles)
endif()
# Maintainer scripts 0755 and conffiles 0644 whatever the checkout's umask made of them.
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)

include(CPack)
