# The web page's tests, run by ctest in the native build (the WebAssembly module is built
# beside it into build-web/ by scripts/build-web.sh, which scripts/test.sh runs first): the
# JavaScript API in node and the page in headless Chromium, both against this build's CLI.
# Skipped (77, with the reason) where the web build, node or Chromium is missing.
if(NOT TARGET lora-verify)
  return()  # -DLV_BUILD_CLI=OFF: no CLI to compare with
endif()
foreach(part node browser)
  add_test(NAME web.${part} COMMAND bash ${PROJECT_SOURCE_DIR}/scripts/test-web.sh --${part})
  set_tests_properties(web.${part} PROPERTIES
    ENVIRONMENT "LV_CLI=$<TARGET_FILE:lora-verify>"
    SKIP_RETURN_CODE 77 TIMEOUT 600)
endforeach()
