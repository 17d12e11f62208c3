# The role daemons (issue 16 item 4): each links only its own role's code (nm,
# ldd), nothing under services/ includes a header of orchestrator/, and the
# decoder's and embedder's default weights (q8 on a checkpoint, as g3n run).
# Label: daemons.
add_test(NAME daemons_symbols
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/daemons/daemon_symbols.sh $<TARGET_FILE_DIR:g3n-decoder>
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
add_test(NAME daemons_services_includes
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/daemons/services_includes.sh WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
add_test(NAME daemons_weights_default
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/daemons/weights_default.sh $<TARGET_FILE_DIR:g3n-decoder>
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(daemons_symbols daemons_services_includes daemons_weights_default PROPERTIES LABELS daemons)
