# Chaos under load (issue 18): the daemons over TCP on loopback, concurrent
# multimodal chats while workers of every role are killed or stopped and the
# orchestrator restarts (tests/chaos/chaos.py). About 2 minutes; Release build
# only (the sanitizer build's daemons would be too slow for its bounds).
# Labels: chaos, slow.
if(NOT G3N_SANITIZE)
  add_test(NAME chaos_under_load
    COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/chaos/chaos.py $<TARGET_FILE_DIR:g3n-decoder> --g3n $<TARGET_FILE:g3n>
    WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  set_tests_properties(chaos_under_load PROPERTIES LABELS "chaos;slow" TIMEOUT 400
    ENVIRONMENT "OMP_NUM_THREADS=1;OMP_WAIT_POLICY=passive" RUN_SERIAL TRUE)
endif()
