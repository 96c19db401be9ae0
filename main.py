from dify_plugin import DifyPluginEnv, Plugin

from adapters.litellm_engine import start_loading
from adapters.startup import check_provider_configs

if __name__ == "__main__":
    check_provider_configs()

plugin = Plugin(DifyPluginEnv())

if __name__ == "__main__":
    start_loading()
    plugin.run()
