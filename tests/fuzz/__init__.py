"""Property tests over every parser that reads untrusted input: only the
agent's own typed errors (agent.errors.AgentError) may escape."""
