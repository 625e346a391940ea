// Blocks the calling thread until SIGINT or SIGTERM (asio signal_set), for the long-running
// node commands.
#pragma once

namespace tandem {

void WaitForTerminationSignal();

}  // namespace tandem
