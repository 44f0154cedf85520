namespace Isthmus.ControlPlane.Store;

/// <summary>One committed configuration: who, when, why, and the whole document (JSON).</summary>
public sealed record Revision(long Id, string Author, DateTimeOffset Time, string Comment, string Document, DateTimeOffset? ConfirmBy)
{
    public RevisionInfo Info => new(Id, Author, Time, Comment, ConfirmBy);
}

/// <summary>A revision without its document: what a revision list shows.</summary>
/// <param name="ConfirmBy">For a commit-confirmed revision: the deadline it was committed with.</param>
public sealed record RevisionInfo(long Id, string Author, DateTimeOffset Time, string Comment, DateTimeOffset? ConfirmBy);

/// <summary>A commit waiting for its confirmation; without one by <see cref="Deadline"/> the store goes back to <see cref="Previous"/>.</summary>
public sealed record PendingConfirm(long Revision, long Previous, DateTimeOffset Deadline);

/// <summary>One line of the audit log: who did what, when, from where, and how it ended.</summary>
public sealed record AuditEntry(long Id, DateTimeOffset Time, string Actor, string Address, string Action, string Outcome);
