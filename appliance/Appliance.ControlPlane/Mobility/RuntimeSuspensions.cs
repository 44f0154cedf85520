using System.Diagnostics.Tracing;

namespace Isthmus.ControlPlane.Mobility;

/// <summary>
/// Every runtime suspension of the process (the runtime stopping every managed thread at a safe point: for a garbage
/// collection, and for its own work such as tiered compilation's call-counting cleanup), from the runtime's own events
/// (<c>Microsoft-Windows-DotNETRuntime</c>, keyword GC 0x1: GCSuspendEEBegin_V1 … GCRestartEEEnd_V1, which the runtime
/// raises for every suspension whatever its reason). A suspended worker that returns from poll() into managed code
/// waits until the restart: a tail suspect of the moves (issue 6), counted and kept (the last
/// <see cref="Capacity"/>, with their wall-clock start) so a benchmark can overlap them with its moves.
/// </summary>
/// <remarks>One listener per process (<see cref="Shared"/>); the runtime delivers the events on its own dispatch thread.</remarks>
public sealed class RuntimeSuspensions : EventListener
{
    public const int Capacity = 512;

    /// <summary>GCSuspendEEBegin_V1 and GCRestartEEEnd_V1 in the runtime's event manifest.</summary>
    private const int SuspendBeginId = 9;
    private const int RestartEndId = 3;

    private static readonly Lazy<RuntimeSuspensions> _shared = new(() => new RuntimeSuspensions());
    private readonly Lock _gate = new();
    private readonly Suspension[] _ring = new Suspension[Capacity];
    private long _count;
    private double _totalMs;
    private DateTime? _begin;
    private int _reason;

    private RuntimeSuspensions()
    {
    }

    /// <summary>The process's listener (created, and the runtime's events enabled, on first use).</summary>
    public static RuntimeSuspensions Shared => _shared.Value;

    /// <summary>Suspensions ended so far, and their total duration (suspend begin → restart end) in ms.</summary>
    public (long Count, double TotalMs) Totals()
    {
        lock (_gate)
        {
            return (_count, _totalMs);
        }
    }

    /// <summary>The suspensions that began at or after <paramref name="sinceUtc"/> (the last <see cref="Capacity"/> at most), oldest first.</summary>
    public IReadOnlyList<Suspension> Since(DateTime sinceUtc)
    {
        lock (_gate)
        {
            var n = (int)Math.Min(_count, Capacity);
            var list = new List<Suspension>(n);
            for (var i = _count - n; i < _count; i++)
            {
                var s = _ring[i % Capacity];
                if (s.StartUtc >= sinceUtc)
                {
                    list.Add(s);
                }
            }

            return list;
        }
    }

    protected override void OnEventSourceCreated(EventSource eventSource)
    {
        if (eventSource.Name == "Microsoft-Windows-DotNETRuntime")
        {
            EnableEvents(eventSource, EventLevel.Informational, (EventKeywords)0x1);
        }
    }

    protected override void OnEventWritten(EventWrittenEventArgs eventData)
    {
        switch (eventData.EventId)
        {
            case SuspendBeginId:
                lock (_gate)
                {
                    _begin = eventData.TimeStamp.ToUniversalTime();
                    _reason = eventData.Payload is [var reason, ..] ? Convert.ToInt32(reason, System.Globalization.CultureInfo.InvariantCulture) : -1;
                }

                break;
            case RestartEndId:
                lock (_gate)
                {
                    if (_begin is { } begin)
                    {
                        var ms = (eventData.TimeStamp.ToUniversalTime() - begin).TotalMilliseconds;
                        _ring[_count % Capacity] = new Suspension(begin, ms, ReasonName(_reason));
                        _count++;
                        _totalMs += ms;
                        _begin = null;
                    }
                }

                break;
        }
    }

    /// <summary>The runtime's SuspendEE reasons (its event manifest's GCSuspendEEReason map).</summary>
    internal static string ReasonName(int reason) => reason switch
    {
        0 => "other",
        1 => "gc",
        2 => "appdomain shutdown",
        3 => "code pitching",
        4 => "shutdown",
        5 => "debugger",
        6 => "gc prep",
        7 => "debugger sweep",
        _ => $"reason {reason}",
    };
}

/// <summary>One runtime suspension: when it began (UTC), how long until the threads were restarted, and why.</summary>
public readonly record struct Suspension(DateTime StartUtc, double Ms, string Reason);
