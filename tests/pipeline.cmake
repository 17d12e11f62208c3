# The pipeline's tests (issue 7): fixture cases through the transport, the
# daemons as separate processes over TCP, a daemon killed mid-request, the demo
# run, the compose file, and the network-namespace test. Label: pipeline.
set(G3N_PIPELINE_ENV "OMP_NUM_THREADS=1;G3N_FIXTURES=${G3N_FIXTURES}")

foreach(case_name text-tiny mm-tiny)
  add_test(NAME check_pipeline_${case_name}
    COMMAND g3n check-pipeline ${G3N_FIXTURES}/${case_name} WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  set_tests_properties(check_pipeline_${case_name} PROPERTIES LABELS "fixture;pipeline" ENVIRONMENT "${G3N_PIPELINE_ENV}")
endforeach()

add_test(NAME pipeline_run_demo
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/pipeline/run_demo.sh $<TARGET_FILE:g3n>
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(pipeline_run_demo PROPERTIES LABELS pipeline ENVIRONMENT "${G3N_PIPELINE_ENV}")

add_test(NAME pipeline_daemons_tcp
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/pipeline/daemons_tcp.sh $<TARGET_FILE_DIR:g3n-decoder> $<TARGET_FILE:g3n>
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
add_test(NAME pipeline_daemon_killed
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/pipeline/daemon_killed.sh $<TARGET_FILE_DIR:g3n-decoder> $<TARGET_FILE:g3n>
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
add_test(NAME pipeline_compose_config
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/pipeline/compose_config.sh WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
add_test(NAME pipeline_netns
  COMMAND bash ${CMAKE_SOURCE_DIR}/scripts/netns-test.sh $<TARGET_FILE_DIR:g3n-decoder> $<TARGET_FILE:g3n>
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(pipeline_daemons_tcp pipeline_daemon_killed pipeline_compose_config pipeline_netns
  PROPERTIES LABELS pipeline ENVIRONMENT "${G3N_PIPELINE_ENV}" SKIP_RETURN_CODE 77 TIMEOUT 600)
# CurveZMQ (issue 17): a multimodal request's TCP bytes between the daemons, recorded by relays, hold
# neither the prompt nor the image (and do hold both with --insecure: the control).
add_test(NAME pipeline_curve_capture
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/pipeline/curve_capture.sh $<TARGET_FILE_DIR:g3n-decoder> $<TARGET_FILE:g3n>
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(pipeline_curve_capture PROPERTIES LABELS pipeline ENVIRONMENT "${G3N_PIPELINE_ENV}" TIMEOUT 300)

# g3n bench pipeline: both set-ups (threads over inproc://, daemons over TCP), same tokens, no daemon left behind.
add_test(NAME pipeline_bench
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/pipeline/bench_pipeline.sh $<TARGET_FILE:g3n>
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(pipeline_bench PROPERTIES LABELS pipeline ENVIRONMENT "${G3N_PIPELINE_ENV}" TIMEOUT 300)

# Issue 22: encoders and the decoder swapped under a multimodal load (graceful drain on SIGTERM, --probe ready):
# zero failed chats, every answer as the undisturbed one, drained daemons exit 0. A load test: Release only
# (label release_only; under the sanitizers its chats outlast the clients' timeout), while test_drain runs the
# drain itself in both builds.
add_test(NAME pipeline_drain_swap
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/pipeline/drain_swap.sh $<TARGET_FILE_DIR:g3n-decoder> $<TARGET_FILE:g3n>
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(pipeline_drain_swap PROPERTIES LABELS "pipeline;slow;release_only" ENVIRONMENT "${G3N_PIPELINE_ENV}" TIMEOUT 600)
# deploy/kubernetes renders (kubectl kustomize) and fits the binaries: command lines, probes, ports, rollouts.
add_test(NAME deploy_kubernetes_manifests
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/pipeline/kubernetes_manifests.sh $<TARGET_FILE_DIR:g3n-decoder>
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(deploy_kubernetes_manifests PROPERTIES LABELS pipeline TIMEOUT 120)
# Issue 22: python/g3n_worker's example as the only vision encoder (mm-tiny through C daemons), then swapped for
# g3n-vision-encoder under load. Release only (a load test, as pipeline_drain_swap).
add_test(NAME pipeline_python_worker
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/pipeline/python_worker.sh $<TARGET_FILE_DIR:g3n-decoder> $<TARGET_FILE:g3n>
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(pipeline_python_worker PROPERTIES LABELS "pipeline;slow;release_only" ENVIRONMENT "${G3N_PIPELINE_ENV}" TIMEOUT 600)

# Sessions through g3n-orchestrator (issue 16): 10-turn chats with prefix reuse on and off (front door and HTTP,
# the same tokens), a decoder holding a session killed (rebuilt elsewhere), none left (an error naming it).
add_test(NAME pipeline_session_reuse
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/pipeline/session_reuse.sh $<TARGET_FILE_DIR:g3n-decoder> $<TARGET_FILE:g3n>
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(pipeline_session_reuse PROPERTIES LABELS pipeline ENVIRONMENT "${G3N_PIPELINE_ENV}" TIMEOUT 300)

# g3n serve keeps decoder sessions for prefix reuse as g3n-orchestrator --http does: a 4-turn HTTP chat continues
# them (counted in /metrics) with the answers of --no-prefix-cache.
add_test(NAME pipeline_serve_prefix_cache
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/pipeline/serve_prefix_cache.sh $<TARGET_FILE:g3n>
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(pipeline_serve_prefix_cache PROPERTIES LABELS pipeline ENVIRONMENT "${G3N_PIPELINE_ENV}" TIMEOUT 120)
# Live sessions through g3n-orchestrator's front door (issue 16 item 2): `g3n live --connect` and
# `g3n run --video --connect` against the same session in one process, a decoder holding a live session killed.
add_executable(g3n_make_test_video pipeline/make_test_video.c unit/test_media_util.c unit/test_util.c)
target_include_directories(g3n_make_test_video PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/unit)
target_link_libraries(g3n_make_test_video PRIVATE g3n_orchestrator PkgConfig::CMOCKA)
add_test(NAME pipeline_live_netns
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/pipeline/live_netns.sh $<TARGET_FILE_DIR:g3n-decoder> $<TARGET_FILE:g3n>
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(pipeline_live_netns PROPERTIES LABELS pipeline ENVIRONMENT "${G3N_PIPELINE_ENV}"
  SKIP_RETURN_CODE 77 TIMEOUT 600)
add_test(NAME pipeline_live_door
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/pipeline/live_door.sh $<TARGET_FILE_DIR:g3n-decoder> $<TARGET_FILE:g3n>
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(pipeline_live_door PROPERTIES LABELS pipeline ENVIRONMENT "${G3N_PIPELINE_ENV}" TIMEOUT 300)
