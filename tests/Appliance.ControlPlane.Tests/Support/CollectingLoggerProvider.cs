using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Isthmus.ControlPlane.Tests.Support;

/// <summary>Keeps every formatted log line, as a console would show them.</summary>
public sealed class CollectingLoggerProvider : ILoggerProvider
{
    public ConcurrentQueue<(int EventId, string Message)> Lines { get; } = new();

    public ILogger CreateLogger(string categoryName) => new Collector(this);

    public void Dispose()
    {
    }

    private sealed class Collector(CollectingLoggerProvider owner) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            owner.Lines.Enqueue((eventId.Id, formatter(state, exception) + (exception is null ? "" : "\n" + exception)));
    }
}
