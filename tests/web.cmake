# The web page (issue 20): `g3n serve --demo` and its page at / driven in
# Debian's headless Chromium by playwright-core (tests/web/run.sh): a chat with
# an image, a microphone recording, an invalid image's error, the Stop button
# (the server frees the session), a live session fed by a fake camera and
# microphone; g3n-orchestrator --http serves the same files. Screenshots in
# the build folder (web-artifacts/). Skipped (77) until scripts/setup.sh has
# installed chromium and run `npm ci` in tests/web. Labels: http, release_only
# (about 1 min in Release; under the sanitizers 4 min of image and frame encoding
# for little: the server paths it takes are the http tests', which run there).
# Run it there by hand: ctest --test-dir build/sanitize -R http_web.
add_test(NAME http_web
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/web/run.sh $<TARGET_FILE:g3n> ${CMAKE_BINARY_DIR}/web-artifacts
    $<TARGET_FILE:g3n-orchestrator>
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(http_web PROPERTIES LABELS "http;release_only" ENVIRONMENT "OMP_NUM_THREADS=2" SKIP_RETURN_CODE 77
  TIMEOUT 900)
