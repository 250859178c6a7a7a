package binlog

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/go-sql-driver/mysql"
	"go.uber.org/zap"
)

// DDL cannot share a transaction with its marker row: MySQL and MariaDB
// commit implicitly before and after every DDL statement. So a DDL Txn is
// applied in three steps, each durable on its own:
//
//  1. its marker row is committed with ddl_pending = 1 ("running");
//  2. the statement runs, with DDLMarker in its text (so the peer's tailer
//     drops it) and skip_replication on (MariaDB);
//  3. the marker row is set to ddl_pending = 0.
//
// A crash between 1 and 3 leaves a pending row: the checkpoint stops
// before it, so the DDL comes again, and this time it may already have
// taken effect. Only then is an error that says "already done" (the table
// exists, the column is already gone, ...) taken as success; a DDL that
// is not pending gets no such leniency, so a real divergence between the
// servers is reported, not hidden. A statement the server refuses outright
// (not a lost connection) has its pending row removed, so that a later
// attempt is again a first one.

// ddlAlreadyDone are the server errors a re-run of a DDL that took effect
// before a crash can give.
var ddlAlreadyDone = map[uint16]bool{
	1007: true, // ER_DB_CREATE_EXISTS
	1008: true, // ER_DB_DROP_EXISTS
	1050: true, // ER_TABLE_EXISTS_ERROR
	1051: true, // ER_BAD_TABLE_ERROR
	1054: true, // ER_BAD_FIELD_ERROR (ALTER ... CHANGE of a renamed column)
	1060: true, // ER_DUP_FIELDNAME
	1061: true, // ER_DUP_KEYNAME
	1091: true, // ER_CANT_DROP_FIELD_OR_KEY
	1146: true, // ER_NO_SUCH_TABLE (RENAME, ALTER of a renamed table)
	1826: true, // ER_FK_DUP_NAME
}

// ddlMarked returns stmt with DDLMarker inserted after its first word
// ("CREATE /* tandem:applied */ TABLE ..."): the server keeps comments
// inside a statement in the binlog.
func ddlMarked(stmt string) string {
	s := strings.TrimSpace(stmt)
	if strings.Contains(s, DDLMarker) {
		return s
	}
	i := strings.IndexFunc(s, func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '(' || r == '/' })
	if i < 0 {
		return s + " " + DDLMarker
	}
	return s[:i] + " " + DDLMarker + s[i:]
}

// applyDDL applies one DDL Txn (see above).
func (a *Applier) applyDDL(ctx context.Context, it *applyItem) error {
	t := it.t
	conn, err := a.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	var b strings.Builder
	if !it.pending {
		b.WriteString(a.session + ";")
		a.markerSQL(&b, []*applyItem{it}, true)
		if _, err := applyExec(ctx, conn, b.String()); err != nil {
			return fmt.Errorf("apply DDL %s from %s: marker: %w", t.GTID, t.Origin, err)
		}
	}
	b.Reset()
	b.WriteString(a.session + ";")
	if t.DDL.Schema != "" {
		b.WriteString("USE ")
		if err := applyIdent(&b, t.DDL.Schema); err != nil {
			return fmt.Errorf("apply DDL %s from %s: schema: %w", t.GTID, t.Origin, err)
		}
		b.WriteString(";")
	}
	b.WriteString(ddlMarked(t.DDL.Statement))
	_, err = applyExec(ctx, conn, b.String())
	var me *mysql.MySQLError
	if err != nil && errors.As(err, &me) && me.Number == 1049 && t.DDL.Schema != "" {
		// The default schema is gone here (say, a DROP DATABASE ran in
		// it); the statement may not need it.
		b.Reset()
		b.WriteString(a.session + ";" + ddlMarked(t.DDL.Statement))
		_, err = applyExec(ctx, conn, b.String())
	}
	switch {
	case err == nil:
	case it.pending && errors.As(err, &me) && ddlAlreadyDone[me.Number]:
		a.log.Warn("DDL applied before a crash, it seems; taking it as done",
			zap.String("origin", t.Origin), zap.String("gtid", t.GTID), zap.String("statement", abbreviateDDL(t.DDL.Statement)), zap.Error(err))
	case errors.As(err, &me) && ctx.Err() == nil:
		// Refused, so not in effect: the next attempt is a first one.
		if _, derr := conn.ExecContext(ctx, "DELETE FROM `"+MarkerSchema+"`.`"+MarkerTable+"` WHERE origin = ? AND seq = ? AND ddl_pending = 1", t.Origin, t.Seq); derr != nil {
			a.log.Warn("could not clear a pending DDL marker", zap.Error(derr))
		}
		return fmt.Errorf("apply DDL %s from %s (%s): %w", t.GTID, t.Origin, abbreviateDDL(t.DDL.Statement), err)
	default:
		return fmt.Errorf("apply DDL %s from %s (%s): %w", t.GTID, t.Origin, abbreviateDDL(t.DDL.Statement), err)
	}
	// The rows of a CREATE TABLE ... SELECT go in with the marker's
	// "done", in one transaction: after a crash in between, the DDL counts
	// as done (the table exists) and the rows go in again, once.
	b.Reset()
	b.WriteString(a.session + ";START TRANSACTION")
	for i := range t.Rows {
		b.WriteByte(';')
		if err := applyInsertSQL(&b, &t.Rows[i], false, a.mysql); err != nil {
			a.rollback(conn)
			return fmt.Errorf("apply DDL %s from %s: rows: %w", t.GTID, t.Origin, err)
		}
	}
	b.WriteString(";UPDATE `" + MarkerSchema + "`.`" + MarkerTable + "` SET ddl_pending = 0 WHERE origin = _utf8mb4 ")
	applyHex(&b, []byte(t.Origin))
	fmt.Fprintf(&b, " AND seq = %d", t.Seq)
	if _, err := applyExec(ctx, conn, b.String()); err != nil {
		a.rollback(conn)
		return fmt.Errorf("apply DDL %s from %s: marker: %w", t.GTID, t.Origin, err)
	}
	if _, err := applyExec(ctx, conn, "COMMIT"); err != nil {
		a.rollback(conn)
		return fmt.Errorf("apply DDL %s from %s: marker: %w", t.GTID, t.Origin, err)
	}
	it.done = true
	return nil
}

func abbreviateDDL(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 120 {
		return s[:120] + "..."
	}
	return s
}
