using Isthmus.ControlPlane.Logging;
using Isthmus.ControlPlane.Tests.Support;
using Microsoft.Extensions.Logging;

namespace Isthmus.ControlPlane.Tests.Logging;

public sealed class RateLimitedLogTests
{
    [Fact]
    public void A_burst_is_logged_then_suppressed_then_summarised_when_tokens_return()
    {
        var time = new ManualTimeProvider();
        using var provider = new CollectingLoggerProvider();
        var log = new RateLimitedLog(provider.CreateLogger("test"), time, burst: 3, perSecond: 1);
        var written = 0;
        for (var i = 0; i < 1000; i++)
        {
            if (log.TryLog(LogEvents.MacMoved, i, static (l, _) => l.LogInformation("move")))
            {
                written++;
            }
        }

        Assert.Equal(3, written);
        Assert.Equal(997, log.Suppressed);
        Assert.True(log.TryLog(LogEvents.MacDamped, 0, static (l, _) => l.LogInformation("other event has its own bucket")));

        time.Advance(TimeSpan.FromSeconds(1));
        Assert.True(log.TryLog(LogEvents.MacMoved, 1, static (l, _) => l.LogInformation("move")));
        Assert.Contains(provider.Lines, l => l.EventId == LogEvents.RateLimitedSuppressed && l.Message.Contains("997", StringComparison.Ordinal));
    }
}
