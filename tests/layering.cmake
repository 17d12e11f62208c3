# The layering (issue 23): every #include of common/, services/ and
# orchestrator/ against the one table in layering/includes.sh, and that script
# failing on planted violations. Label: layering.
add_test(NAME layering_includes
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/layering/includes.sh ${CMAKE_SOURCE_DIR})
add_test(NAME layering_includes_self_test
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/layering/self_test.sh)
set_tests_properties(layering_includes layering_includes_self_test PROPERTIES LABELS layering)
