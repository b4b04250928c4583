"""Where alerts are decided: threshold kinds (PromQL and Python side by side), rule files, the agent."""
