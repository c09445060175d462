# `cmake --install <build> --prefix P`: headers, the library, the program, and a CMake package
# (birdplaneConfig.cmake, a version file, exported targets) so that another project can write
#   find_package(birdplane 0.2 REQUIRED)
#   target_link_libraries(app PRIVATE birdplane::birdplane)
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(BIRDPLANE_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/birdplane)

install(TARGETS birdplane EXPORT birdplaneTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/birdplane DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        FILES_MATCHING PATTERN "*.h")
install(FILES ${BIRDPLANE_GENERATED_INCLUDE}/birdplane/version.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/birdplane)
if(TARGET birdplane_cli)
  install(TARGETS birdplane_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()

install(EXPORT birdplaneTargets NAMESPACE birdplane:: DESTINATION ${BIRDPLANE_INSTALL_CMAKEDIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/birdplaneConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/birdplaneConfig.cmake
                              INSTALL_DESTINATION ${BIRDPLANE_INSTALL_CMAKEDIR})
# 0.x releases promise nothing across minor versions: 0.2 accepts 0.2.*, not 0.3.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/birdplaneConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/birdplaneConfig.cmake ${PROJECT_BINARY_DIR}/birdplaneConfigVersion.cmake
        DESTINATION ${BIRDPLANE_INSTALL_CMAKEDIR})
