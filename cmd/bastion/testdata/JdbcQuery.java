// A JDBC client for TestDirectPostgresListener: connects to the URL in its
// first argument (pgjdbc, sslmode=verify-full) and prints each row of the
// query in its second as col|col.
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.Statement;

public class JdbcQuery {
    public static void main(String[] args) throws Exception {
        try (Connection c = DriverManager.getConnection(args[0]);
             Statement st = c.createStatement();
             ResultSet rs = st.executeQuery(args[1])) {
            int n = rs.getMetaData().getColumnCount();
            while (rs.next()) {
                StringBuilder b = new StringBuilder();
                for (int i = 1; i <= n; i++) {
                    if (i > 1) b.append('|');
                    b.append(rs.getString(i));
                }
                System.out.println(b);
            }
        }
    }
}
