"""The plugin as Dify's daemon runs it: `python -m main` on the SDK's stdio protocol."""

import gc

# The imports below build ~145k long-lived objects; collections while they are built only re-scan
# them. adapters/runtime/sdk_runtime.py explains this and the other start-up and writer patches.
gc.disable()

import logging  # noqa: E402

from dify_plugin import DifyPluginEnv, Plugin  # noqa: E402
from dify_plugin.config.logger_format import plugin_logger_handler  # noqa: E402

from adapters.runtime import sdk_runtime  # noqa: E402
from adapters.runtime.startup import check_provider_configs  # noqa: E402

if __name__ == "__main__":
    check_provider_configs()

with sdk_runtime.libyaml_for_the_sdk():
    plugin = Plugin(DifyPluginEnv())
sdk_runtime.end_of_start_up()

if __name__ == "__main__":
    # The gateway layer's WARNING lines (adapters/gateway/log.py) go to Dify's plugin log.
    logging.getLogger("adapters").addHandler(plugin_logger_handler)
    sdk_runtime.load_litellm_after_first_heartbeat(plugin)
    sdk_runtime.serialize_chunks_once()
    plugin.run()
