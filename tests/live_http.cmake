# The HTTP live-session endpoint (issue 10): `g3n serve --demo` driven with
# curl (tests/http/live.sh): create, frames, audio, ask (JSON and SSE), state,
# delete; unknown ids, bad bodies, the media limit, the session limit, idle
# expiry. Label: http.
add_test(NAME http_live
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/http/live.sh $<TARGET_FILE:g3n>
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(http_live PROPERTIES LABELS http ENVIRONMENT "OMP_NUM_THREADS=2" SKIP_RETURN_CODE 77
  TIMEOUT 600)
# The same against g3n-orchestrator --http and the four worker daemons over TCP (issue 16 item 2).
add_test(NAME http_live_orchestrator
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/http/live.sh $<TARGET_FILE:g3n> ${CMAKE_BINARY_DIR}
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(http_live_orchestrator PROPERTIES LABELS http ENVIRONMENT "OMP_NUM_THREADS=1" SKIP_RETURN_CODE 77
  TIMEOUT 600)
