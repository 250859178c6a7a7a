package mysqltest

import "testing"

func TestStart(t *testing.T) {
	s := Start(t, Options{ServerID: 7})
	db := s.DB("")
	var format, image, meta string
	var id uint32
	if err := db.QueryRow("SELECT @@binlog_format, @@binlog_row_image, @@binlog_row_metadata, @@server_id").Scan(&format, &image, &meta, &id); err != nil {
		t.Fatal(err)
	}
	if format != "ROW" || image != "FULL" || meta != "FULL" || id != 7 {
		t.Errorf("settings = %s %s %s %d, want ROW FULL FULL 7", format, image, meta, id)
	}
	s.Exec("CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY, v TEXT)", "INSERT INTO shop.t VALUES (1, 'a')")
	s.Kill()
	s.Restart()
	sum, err := s.Checksum("shop.t")
	if err != nil || sum == 0 {
		t.Errorf("checksum after restart = %d, %v; want the row back", sum, err)
	}
}
