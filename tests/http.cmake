# The HTTP API's tests (issue 9): `g3n serve --demo` driven by the official
# openai npm client, curl for every error case, and a bounded streaming load
# test (tests/http/run.sh). Skipped (77) until scripts/setup.sh has run
# `npm ci` in tests/http. Label: http.
add_test(NAME http_api
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/http/run.sh $<TARGET_FILE:g3n> 48 4
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(http_api PROPERTIES LABELS http ENVIRONMENT "OMP_NUM_THREADS=1" SKIP_RETURN_CODE 77
  TIMEOUT 600)
# MatFormer sub-models over HTTP (issue 21): curl only.
add_test(NAME http_matformer
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/http/matformer.sh $<TARGET_FILE:g3n>
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(http_matformer PROPERTIES LABELS http ENVIRONMENT "OMP_NUM_THREADS=1" TIMEOUT 300)

# The HTTP API secured (issue 17, tests/http/secure.sh): HTTPS with a test CA, API keys (the openai client
# through NODE_EXTRA_CA_CERTS, curl), live sessions owned by their key, per-key limits. Label: http.
add_test(NAME http_secure
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/http/secure.sh $<TARGET_FILE:g3n>
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(http_secure PROPERTIES LABELS http ENVIRONMENT "OMP_NUM_THREADS=1" SKIP_RETURN_CODE 77
  TIMEOUT 300)
