from dify_plugin import DifyPluginEnv, Plugin

from adapters.litellm_engine import start_loading

plugin = Plugin(DifyPluginEnv())

if __name__ == "__main__":
    start_loading()
    plugin.run()
